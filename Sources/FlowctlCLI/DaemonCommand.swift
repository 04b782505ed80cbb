import ArgumentParser
import FlowctlCore
import FlowctlDaemon
import FlowctlLinux
import Foundation
import Glibc
import Logging
import Prometheus
import ServiceLifecycle

struct DaemonCommand: ParsableCommand {
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

    func run() throws {
        try guarded { try runDaemon() }
    }

    func runDaemon() throws {
            // A vanished reader (a closed stderr pipe, a client gone) is an
            // EPIPE for that write, never the end of the daemon.
            signal(SIGPIPE, SIG_IGN)
            let configuration = try resolvedConfiguration()
            let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
            let journal = JournalLogHandler.standardErrorIsJournal()
            LoggingSystem.bootstrap { label in
                if journal {
                    var handler = JournalLogHandler(label: label)
                    handler.logLevel = level
                    return handler
                }
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "flowctl")
            let metrics = DaemonMetrics(version: FlowctlCommand.configuration.version)

            // One writer per host: a second daemon is refused, naming the first;
            // a one-shot command that is changing the host is waited for.
            if let running = try ControlClient.send(ControlRequest(command: .status), to: .daemon, timeoutSeconds: 5) {
                throw ControlServer.SetupError.alreadyRunning(
                    "another flowctl daemon runs in this network namespace (\(running.daemon?.summary ?? "it does not say which"))")
            }
            let writerLock = try HostWriterLock.acquire()
            let edges = Runtime.makeEdges()
            let store = IntentStore(directory: configuration.stateDir)
            // Subscribe before the first dump, so nothing falls between them.
            let topologyEvents = try RtnetlinkMonitor()
            let rulesetEvents = try NftablesMonitor()
            let engine = try SyncEngine(topologySource: edges.topology, backend: edges.backend, store: store,
                                        logger: logger, metrics: metrics, conntrack: edges.conntrack,
                                        coherence: configuration.coherence, declared: configuration.declaredIntent)
            let control = try ControlServer(path: configuration.controlSocket, group: configuration.controlGroup,
                                            logger: logger)
            var metricsServer: MetricsServer?
            if !configuration.metricsAddress.isEmpty {
                metricsServer = try MetricsServer(address: configuration.metricsAddress, registry: metrics.registry, logger: logger)
                metricsServer?.start()
                logger.info("metrics on http://\(configuration.metricsAddress)/metrics")
            }
            let command = self
            let loop = DaemonLoop(engine: engine, topologyEvents: topologyEvents, rulesetEvents: rulesetEvents,
                                  control: control, conntrack: edges.conntrack, backend: edges.backend,
                                  configuration: configuration, logger: logger,
                                  loadConfiguration: { try command.resolvedConfiguration() })
            // SIGHUP (systemctl reload): the configuration and the stored
            // intent are read again; it never ends the daemon.
            signal(SIGHUP, SIG_IGN)
            let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            hangup.setEventHandler { loop.requestReload() }
            hangup.resume()
            defer { hangup.cancel() }
            let backend = edges.backend
            let removeTable: @Sendable () throws -> Void = {
                let batch = try Differ().diff(kernel: try backend.table(FlowctlNames.table), desired: nil)
                if !batch.isEmpty { try backend.apply(batch, generation: nil) }
            }
            let cleanup = configuration.cleanupOnExit ? removeTable : nil
            let service = DaemonService(loop: loop, logger: logger, cleanup: cleanup)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            let result = ServiceResult()
            let finished = DispatchSemaphore(value: 0)
            Task {
                do { try await group.run() } catch { result.failure = error }
                finished.signal()
            }
            finished.wait()
            metricsServer?.stop()
            withExtendedLifetime((control, writerLock)) {}
            if let failure = result.failure { throw failure }
    }
}

/// Carries the service group's error from its task back to the command.
final class ServiceResult: @unchecked Sendable {
    var failure: (any Error)?
}
