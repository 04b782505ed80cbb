import ArgumentParser
import FlowctlCore
import FlowctlDaemon
import Foundation
import Glibc
import Logging

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Follow the host live: keep every enabled bridge's fast path right as devices come and go.",
        discussion: """
            Subscribes to rtnetlink link and route events and to nftables \
            notifications, and turns each change into the smallest batch. \
            enable, disable and status talk to a running daemon over its control \
            socket. SIGTERM or SIGINT stop it; the fast path stays in place \
            (unless --cleanup-on-exit) and the next start adopts it.
            """)

    static let defaultConfigPath = "/etc/flowctl/flowctl.toml"

    @Option(name: .long, help: ArgumentHelp("TOML configuration file (default \(defaultConfigPath) when present).", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Where the intent is stored.", valueName: "dir"))
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp("Control socket path.", valueName: "path"))
    var controlSocket: String?

    @Option(name: .long, help: ArgumentHelp("Group allowed to use the control socket besides root.", valueName: "group"))
    var controlGroup: String?

    @Option(name: .long, help: ArgumentHelp("Prometheus metrics address HOST:PORT; empty disables.", valueName: "addr"))
    var metricsAddress: String?

    @Option(name: .long, help: ArgumentHelp("Full resync period in seconds.", valueName: "s"))
    var resyncInterval: Double?

    @Flag(name: .long, help: "Remove flowctl's table when the daemon stops.")
    var cleanupOnExit = false

    @Option(name: .long, help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error.", valueName: "level"))
    var logLevel: String?

    @Flag(name: .long, help: "Do not re-evaluate offloaded flows on host changes by itself (`flowctl reevaluate` still does).")
    var noAutomaticReevaluation = false

    func resolvedConfiguration() throws -> DaemonConfiguration {
        var configuration: DaemonConfiguration
        if let config {
            configuration = try DaemonConfiguration.load(path: config)
        } else if FileManager.default.fileExists(atPath: Self.defaultConfigPath) {
            configuration = try DaemonConfiguration.load(path: Self.defaultConfigPath)
        } else {
            configuration = DaemonConfiguration()
        }
        if let value = stateDir ?? ProcessInfo.processInfo.environment["FLOWCTL_STATE_DIR"] { configuration.stateDir = value }
        if let value = controlSocket ?? ProcessInfo.processInfo.environment["FLOWCTL_CONTROL_SOCKET"] {
            configuration.controlSocket = value
        }
        if let controlGroup { configuration.controlGroup = controlGroup }
        if let metricsAddress { configuration.metricsAddress = metricsAddress }
        if let resyncInterval {
            guard resyncInterval > 0 else { throw ValidationError("--resync-interval must be positive") }
            configuration.resyncInterval = resyncInterval
        }
        if cleanupOnExit { configuration.cleanupOnExit = true }
        if noAutomaticReevaluation { configuration.coherenceAutomatic = false }
        if let logLevel { configuration.logLevel = logLevel }
        guard Logger.Level(rawValue: configuration.logLevel) != nil else {
            throw ValidationError("unknown log level \(configuration.logLevel)")
        }
        return configuration
    }

    func run() async throws {
        try await guarded {
            let configuration = try resolvedConfiguration()
            Daemon.bootstrapLogging(level: Logger.Level(rawValue: configuration.logLevel) ?? .info)
            let command = self
            try await Daemon.run(configuration: configuration, version: FlowctlCommand.configuration.version,
                                 edges: Runtime.makeEdges(), reload: { try command.resolvedConfiguration() })
        }
    }
}
