import FlowctlCore
import FlowctlLinux
import FlowctlProcess
import Foundation
import Glibc
import Logging

/// The daemon's single event loop, on its own thread: poll() over the
/// rtnetlink and nftables notification sockets, the control socket and a
/// wake-up pipe. Each wake-up drains every pending event first, then
/// reconciles once, so a burst costs one batch and adds no timer delay.
/// Nothing else touches the engine, so it needs no locks. Control requests
/// arrive whole from the control server's thread through `inbox`.
/// @unchecked: the engine and the loop's own state are touched only by the
/// loop's thread (`run`); `stop` and `submit` go through the lock and the pipe.
public final class DaemonLoop: @unchecked Sendable {
    let engine: SyncEngine
    let topologyEvents: any TopologyEventSource
    let rulesetEvents: any RulesetEventSource
    let control: ControlServer?
    /// Conntrack, dumped on its own thread at most as often as costs 1% of a CPU.
    let conntrackSampler: ConntrackSampler
    let backend: any RulesetBackend
    private(set) var configuration: DaemonConfiguration
    let logger: Logger
    /// systemd's notification socket (readiness, reload, stop, watchdog).
    let notifier: SystemdNotifier
    /// Reads the configuration again on SIGHUP (the file and the command
    /// line it was started with); nil: only the stored intent is reloaded.
    let loadConfiguration: (@Sendable () throws -> DaemonConfiguration)?
    /// `stop()` and `submit` wake the loop.
    let wakePipe = WakePipe()
    typealias PendingRequest = (request: ControlRequest, reply: ControlReply)
    struct Inbox {
        var requests: [PendingRequest] = []
        var stopping = false
        var reload = false
    }
    private let inbox = Locked(Inbox())
    let started = ContinuousClock.now
    let networkNamespace = currentNetworkNamespace()

    private var nextResync: ContinuousClock.Instant
    private var nextConntrack: ContinuousClock.Instant = .now
    private var conntrackWarned = false
    private var nextWatchdog: ContinuousClock.Instant = .now
    private var ready = false
    private var notifyFailed = false
    private var lastStatusLine: String?

    public init(engine: SyncEngine, topologyEvents: any TopologyEventSource, rulesetEvents: any RulesetEventSource,
                control: ControlServer?, conntrack: any ConntrackSource, backend: any RulesetBackend,
                configuration: DaemonConfiguration, logger: Logger, notifier: SystemdNotifier = SystemdNotifier(),
                loadConfiguration: (@Sendable () throws -> DaemonConfiguration)? = nil)
    {
        self.notifier = notifier
        self.loadConfiguration = loadConfiguration
        self.engine = engine
        self.topologyEvents = topologyEvents
        self.rulesetEvents = rulesetEvents
        self.control = control
        conntrackSampler = ConntrackSampler(conntrack, interval: .seconds(configuration.conntrackInterval))
        engine.offloadedFlowsEstimate = { [conntrackSampler] in conntrackSampler.lastOffloadedFlows }
        self.backend = backend
        self.configuration = configuration
        self.logger = logger
        nextResync = .now + .seconds(configuration.resyncInterval)
    }

    /// Asks the loop to return (from any thread).
    public func stop() {
        inbox.withLock { $0.stopping = true }
        wakePipe.wake()
    }

    /// SIGHUP: reload the configuration and the stored intent (from any thread).
    public func requestReload() {
        inbox.withLock { $0.reload = true }
        wakePipe.wake()
    }

    /// A control request from the control server's thread; `reply` is
    /// called on the loop's thread once it has run.
    func submit(_ request: ControlRequest, reply: ControlReply) {
        inbox.withLock { $0.requests.append((request, reply)) }
        wakePipe.wake()
    }

    /// Runs until `stop()`.
    public func run() {
        // Notifications of our own commits name this thread.
        engine.ownPID = currentThreadID()
        // The coherence watch's starting point (after subscribing: nothing falls between).
        do { engine.seedCoherence(try topologyEvents.baseline()) } catch {
            logger.warning("cannot read neighbours and bridge FDB; MAC and neighbour moves are judged from the next change on: \(error)")
        }
        // Signal handlers are installed by now (the service group runs us):
        // only now may clients find the control socket.
        let controlServer: ConnectionServer?
        do { controlServer = try control?.start { [self] request, reply in submit(request, reply: reply) } } catch {
            logger.critical("cannot publish the control socket: \(error)")
            return
        }
        conntrackSampler.start()
        defer {
            controlServer?.stop()
            control?.unpublish()
            conntrackSampler.stop()
        }
        logger.info("daemon started", metadata: ["pid": "\(getpid())", "state_dir": "\(configuration.stateDir)",
                                                 "control_socket": "\(control?.path ?? "none")"])
        var descriptors = [
            pollfd(fd: wakePipe.descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: topologyEvents.pollDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: rulesetEvents.pollDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            engine.step()
            tellServiceManager()
            let now = ContinuousClock.now
            var timeout = min(nextResync, nextConntrack) - now
            if notifier.watchdogInterval != nil { timeout = min(timeout, nextWatchdog - now) }
            if let budget = engine.sleepBudget(now: now) { timeout = min(timeout, budget) }
            let milliseconds = Int32(clamping: max(0, timeout.nanoseconds / 1_000_000 + 1))
            for index in descriptors.indices { descriptors[index].revents = 0 }
            let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
            if ready < 0 && errno != EINTR {
                logger.critical("poll failed: \(String(cString: strerror(errno)))")
                return
            }
            var requests: [PendingRequest] = []
            if descriptors[0].revents != 0 {
                wakePipe.drain()
                let taken = inbox.withLock { state in
                    defer { state.requests = []; state.reload = false }
                    return state
                }
                requests = taken.requests
                if taken.stopping {
                    notify(["STOPPING=1", "STATUS=stopping"])
                    logger.info("daemon stopping")
                    return
                }
                if taken.reload { reload() }
            }
            let arrival = ContinuousClock.now
            // Drain everything pending before reconciling: one batch per burst.
            drainEvents(arrival: arrival)
            if !requests.isEmpty {
                engine.step()
                // Status requests of one wake-up share one answer (one read of
                // the table and conntrack, one encoding): 200 clients at once
                // cost the loop one.
                for pending in requests {
                    if pending.request.command == .status {
                        pending.reply.send(encoded: statusAnswer(pending.request))
                    } else {
                        pending.reply.send(handle(pending.request))
                    }
                }
            }
            let after = ContinuousClock.now
            if after >= nextResync {
                engine.requestResync(.periodic)
                nextResync = after + .seconds(configuration.resyncInterval)
            }
            if after >= nextConntrack {
                sampleConntrack()
                nextConntrack = after + .seconds(configuration.conntrackInterval)
            }
        }
    }

    // MARK: Service manager

    /// Readiness after the first pass, a status line when it changes, and
    /// the watchdog ping: sent from the loop itself, so a loop that stalls
    /// stops pinging and systemd restarts it (WatchdogSec=).
    func tellServiceManager() {
        guard notifier.isActive else { return }
        var assignments: [String] = []
        let status = "\(engine.intent.bridges.count) bridge(s) enabled, \(engine.lastOutcome?.plan.devices.count ?? 0) device(s) in the flowtable, \(engine.errorCount) error(s)"
        if status != lastStatusLine {
            assignments.append("STATUS=\(status)")
            lastStatusLine = status
        }
        if !ready {
            assignments.append("READY=1")
            ready = true
        }
        let now = ContinuousClock.now
        if let interval = notifier.watchdogInterval, now >= nextWatchdog {
            assignments.append("WATCHDOG=1")
            nextWatchdog = now + interval
        }
        notify(assignments)
    }

    func notify(_ assignments: [String]) {
        do { try notifier.notify(assignments) } catch {
            if !notifyFailed { logger.warning("cannot notify the service manager: \(error)") }
            notifyFailed = true
        }
    }

    /// SIGHUP: the configuration file is read again (a bad one is named
    /// and the running configuration stays), the declared bridges, the
    /// intervals and the coherence settings take effect at once, and the
    /// stored intent is read again. Keys that only a restart can change say so.
    func reload() {
        notify(["RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds())"])
        defer { notify(["READY=1"]) }
        if let loadConfiguration {
            do {
                let (next, restartOnly) = configuration.reloading(try loadConfiguration())
                if !restartOnly.isEmpty {
                    logger.warning("\(restartOnly.joined(separator: ", ")) changed; takes effect when the daemon restarts")
                }
                configuration = next
                engine.reconfigure(declared: next.declaredIntent, coherence: next.coherence)
                nextResync = min(nextResync, .now + .seconds(configuration.resyncInterval))
                nextConntrack = min(nextConntrack, .now + .seconds(configuration.conntrackInterval))
                conntrackSampler.setInterval(.seconds(configuration.conntrackInterval))
            } catch {
                logger.error("configuration not reloaded; the running one stays: \(error)")
            }
        }
        do {
            try engine.reloadIntent()
            logger.notice("reloaded", metadata: ["bridges": "\(engine.intent.bridgeNames)",
                                                 "declared": "\(engine.declared.bridgeNames)"])
        } catch {
            logger.error("stored intent not reloaded; the running one stays: \(error)")
        }
    }

    func drainEvents(arrival: ContinuousClock.Instant) {
        do {
            engine.receive(try topologyEvents.drain(), at: arrival)
        } catch {
            engine.receive([TopologyEvent.lost(reason: "\(error)")], at: arrival)
        }
        do {
            engine.receive(try rulesetEvents.drain(), at: arrival)
        } catch {
            engine.receive([RulesetEvent.lost(reason: "\(error)")], at: arrival)
        }
    }

    func sampleConntrack() {
        // The slow path's packet count, as status shows it (the rules' counters).
        if let rules = try? backend.table(FlowctlNames.table)?.rules {
            engine.metrics.forwardChain(packets: rules.compactMap(\.packets).reduce(0, +))
        }
        guard let summary = conntrackSampler.latest().summary else { return }
        engine.metrics.conntrack(summary)
        if let warning = summary.fillWarning, !conntrackWarned { logger.warning("\(warning)") }
        conntrackWarned = summary.isNearlyFull
    }

    // MARK: Control requests

    /// A client in another network namespace (a socket path reaches across
    /// them) is not this daemon's host.
    func namespaceRefusal(_ request: ControlRequest) -> ControlResponse? {
        guard let theirs = request.networkNamespace, let ours = networkNamespace, theirs != ours else { return nil }
        var refusal = ControlResponse(ok: false, error: "this daemon serves network namespace \(ours), not \(theirs)")
        refusal.servesNetworkNamespace = ours
        return refusal
    }

    func handle(_ request: ControlRequest) -> ControlResponse {
        if let refusal = namespaceRefusal(request) { return refusal }
        do {
            switch request.command {
            case .enable:
                guard let bridge = request.bridge else {
                    return ControlResponse(ok: false, error: "enable: a bridge name is required")
                }
                let options = BridgeIntent(uplinks: request.uplinks ?? [], hwOffload: request.hwOffload ?? .auto,
                                           excludedUplinks: request.excludedUplinks ?? [])
                if let refusal = declaredRefusal(bridge, "enable") { return refusal }
                do { try options.validate(bridge: bridge) } catch {
                    return ControlResponse(ok: false, error: "enable: \(error)")
                }
                // A pattern may match nothing yet; an exact name must exist.
                let result = try engine.change(required: Intent.isPattern(bridge) ? [] : [bridge]) { intent in
                    intent.bridges[bridge] = options
                }
                return response(intent: result.intent, outcome: result.outcome, withStatus: false)
            case .disable:
                guard let bridge = request.bridge else {
                    return ControlResponse(ok: false, error: "disable: a bridge name is required")
                }
                if let refusal = declaredRefusal(bridge, "disable") { return refusal }
                guard engine.intent.bridges[bridge] != nil else {
                    return ControlResponse(ok: false, error: "\(bridge) is not enabled")
                }
                let result = try engine.change(required: []) { intent in intent.bridges[bridge] = nil }
                return response(intent: result.intent, outcome: result.outcome, withStatus: false)
            case .status:
                // What the engine did last is not what this request did: the
                // answer carries the plan and warnings, not the last batch
                // and the table before it (a pass at 1,000 ports would make
                // every answer ten times larger).
                var outcome = engine.lastOutcome
                if let last = outcome {
                    outcome?.batch = NftBatch(table: last.batch.table, changes: [])
                    outcome?.applied = false
                    outcome?.kernelBefore = nil
                    outcome?.predictedTable = nil
                }
                return response(intent: engine.intent, outcome: outcome, withStatus: true)
            case .reevaluate:
                let record = try engine.reevaluateNow(bridges: request.bridges ?? [], ports: request.ports ?? [])
                var answer = response(intent: engine.intent, outcome: nil, withStatus: false)
                answer.reevaluation = record
                return answer
            case .resync:
                engine.requestResync(.requested)
                engine.step()
                return response(intent: engine.intent, outcome: engine.lastOutcome, withStatus: false)
            }
        } catch {
            return ControlResponse(ok: false, error: "\(error)")
        }
    }

    /// The last `status` answer, encoded, and what it was made from. At
    /// 1,000 ports one takes tens of milliseconds to read and encode; a crowd
    /// of clients within `statusReuse` of it, with no event in between,
    /// gets the same bytes.
    private var statusCache: (answer: Data, made: ContinuousClock.Instant, events: Int, batches: Int)?
    static let statusReuse = Duration.milliseconds(100)

    func statusAnswer(_ request: ControlRequest) -> Data {
        // Refused before the cache: a shared answer is for this namespace only.
        if let refusal = namespaceRefusal(request) { return ControlServer.encode(refusal) }
        let now = ContinuousClock.now
        if let cache = statusCache, now - cache.made < Self.statusReuse,
           cache.events == engine.statistics.events, cache.batches == engine.statistics.batches {
            return cache.answer
        }
        let answer = ControlServer.encode(handle(request))
        statusCache = (answer, now, engine.statistics.events, engine.statistics.batches)
        return answer
    }

    /// A bridge the configuration file declares is changed there, not through the socket.
    func declaredRefusal(_ bridge: String, _ command: String) -> ControlResponse? {
        guard engine.declared.bridges[bridge] != nil else { return nil }
        return ControlResponse(ok: false, error: "\(command): \(bridge) is declared in the daemon's configuration file\(configuration.source.map { " \($0)" } ?? ""); change it there and restart the daemon")
    }

    func response(intent: Intent, outcome: ReconcileOutcome?, withStatus: Bool) -> ControlResponse {
        var response = ControlResponse(ok: true)
        response.intent = intent
        response.outcome = outcome
        if let outcome, outcome.applied, let plan = Optional(outcome.plan) {
            response.changes = ChangeLog.lines(for: outcome.batch, plan: plan, previous: nil,
                                               kernel: outcome.kernelBefore)
        }
        response.daemon = DaemonInfo(pid: getpid(), uptimeSeconds: Double((ContinuousClock.now - started).nanoseconds) / 1e9,
                                     statistics: engine.statistics, stateDir: configuration.stateDir,
                                     controlSocket: control?.path, networkNamespace: networkNamespace)
        if !engine.declared.isEmpty {
            response.daemon?.declaredBridges = engine.declared.bridgeNames
            response.daemon?.configurationFile = configuration.source
        }
        if withStatus {
            response.table = try? backend.table(FlowctlNames.table)
            // Status answers read the sampler's last figures: no client
            // waits for a dump or makes the daemon copy a million entries.
            (response.conntrack, response.conntrackError) = conntrackSampler.latest()
        }
        return response
    }
}

extension Duration {
    static func seconds(_ value: Double) -> Duration { .nanoseconds(Int64(value * 1e9)) }
}
