import FlowctlCore
import FlowctlLinux
import Foundation
import Logging
import ServiceLifecycle

/// `flowctl daemon`, assembled: logging, the host writer lock, the
/// subscriptions (before the first dump), the engine, the control socket,
/// metrics, SIGHUP reloading and the service group that stops it on
/// SIGTERM or SIGINT. The CLI resolves the configuration and calls `run`.
public enum Daemon {
    /// The kernel edges the daemon works through.
    public struct Edges: Sendable {
        public var topology: any TopologySource
        public var backend: any RulesetBackend
        public var conntrack: any ConntrackSource

        public init(topology: any TopologySource, backend: any RulesetBackend, conntrack: any ConntrackSource) {
            self.topology = topology
            self.backend = backend
            self.conntrack = conntrack
        }
    }

    /// Log lines to stderr, with journal priorities when stderr is the journal.
    public static func bootstrapLogging(level: Logger.Level) {
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
    }

    /// Runs until SIGTERM or SIGINT. `reload` reads the configuration again
    /// (SIGHUP). Throws what kept it from starting or ended it.
    public static func run(configuration: DaemonConfiguration, version: String, edges: Edges,
                           reload: @escaping @Sendable () throws -> DaemonConfiguration) async throws
    {
        // A vanished reader (a closed stderr pipe, a client gone) is an
        // EPIPE for that write, never the end of the daemon.
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "flowctl")
        let metrics = DaemonMetrics(version: version)

        // One writer per host: a second daemon is refused, naming the first;
        // a one-shot command that is changing the host is waited for.
        if let running = try ControlClient.send(ControlRequest(command: .status), to: .daemon, timeoutSeconds: 5) {
            throw ControlServer.SetupError.alreadyRunning(
                "another flowctl daemon runs in this network namespace (\(running.daemon?.summary ?? "it does not say which"))")
        }
        let writerLock = try HostWriterLock.acquire()
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
            metricsServer = try MetricsServer(address: configuration.metricsAddress, registry: metrics.registry,
                                              logger: logger)
            metricsServer?.start()
            logger.info("metrics on http://\(configuration.metricsAddress)/metrics")
        }
        defer { metricsServer?.stop() }
        let loop = DaemonLoop(engine: engine, topologyEvents: topologyEvents, rulesetEvents: rulesetEvents,
                              control: control, conntrack: edges.conntrack, backend: edges.backend,
                              configuration: configuration, logger: logger, loadConfiguration: reload)
        // SIGHUP (systemctl reload): the configuration and the stored
        // intent are read again; it never ends the daemon. A dispatch
        // source, not a handler: nothing runs in signal context.
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
        let service = DaemonService(loop: loop, logger: logger, cleanup: configuration.cleanupOnExit ? removeTable : nil)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        withExtendedLifetime((control, writerLock)) {}
    }
}
