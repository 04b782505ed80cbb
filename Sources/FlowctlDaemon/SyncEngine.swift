import FlowctlCore
import Foundation
import Histogram
import Logging

/// The daemon's state machine, without any I/O of its own: it is fed
/// events, keeps the topology current from them, and reconciles once per
/// burst. Runs on the daemon's loop thread only. Tested with the fakes.
public final class SyncEngine {
    public struct Statistics: Codable, Sendable, Hashable {
        /// Event drained -> batch acknowledged, for passes that sent a batch.
        public var eventToAckMicroseconds: LatencySummary?
        /// Duration of the last full resync pass.
        public var lastResyncMicroseconds: Double?
        public var events = 0
        public var batches = 0
        public var resyncs = 0
        public var errors = 0
        public var lastError: String?
        /// Coherence: re-evaluations of offloaded flows, and the last one.
        public var reevaluations = 0
        public var lastReevaluation: ReevaluationRecord?
        /// Route-only re-reads (a link carrying routes went down or away, or a
        /// route notification could not be applied as it was), devices found
        /// gone when the kernel refused a batch, and
        /// passes that asked for hardware offload, were refused and fell back
        /// to software. Optional: absent from older daemons' answers.
        public var routeReads: Int?
        public var vanishedDevices: Int?
        public var hardwareFallbacks: Int?
    }

    let topologySource: any TopologySource
    let backend: any RulesetBackend
    let store: IntentStore
    let logger: Logger
    public let metrics: DaemonMetrics
    /// Counts the flows a re-evaluation sends back (for logs and metrics).
    let conntrack: (any ConntrackSource)?
    /// Offloaded flows without a dump (the daemon's sampler); when set, a
    /// re-evaluation reports this instead of dumping conntrack on the loop.
    var offloadedFlowsEstimate: (@Sendable () -> Int?)?
    /// The thread that applies batches: commits it made are not tampering.
    public var ownPID: UInt32

    /// The stored intent with the declared bridges over it.
    public private(set) var intent: Intent
    /// Bridges the daemon's configuration file declares (`[[bridge]]`).
    public private(set) var declared: Intent
    public private(set) var topology: Topology?
    public private(set) var lastOutcome: ReconcileOutcome?
    /// What the daemon reports (status, metrics); the latency percentiles
    /// are worked out from the histogram when asked, not on every pass.
    public var statistics: Statistics {
        if latencySummaryStale {
            latencySummary = LatencySummary(latencies)
            latencySummaryStale = false
        }
        var answer = counters
        answer.eventToAckMicroseconds = latencySummary
        return answer
    }
    private var counters = Statistics()
    /// Errors so far, without working out the latency percentiles.
    public var errorCount: Int { counters.errors }
    private var latencySummary: LatencySummary?
    private var latencySummaryStale = false
    /// The kernel refused hardware offload for these devices: later passes
    /// plan software for them instead of asking (and being refused) again.
    public private(set) var hardwareRefusal: HardwareRefusal?

    /// Something changed since the last reconcile.
    private var pending = false
    /// Why the next pass must start from full dumps (nil: events suffice).
    private var resyncReason: ResyncReason? = .start
    /// The routes must be read again before the next pass (links need not).
    private var routesStale = false
    /// The newest ruleset generation a notification told of, and the
    /// generations our own recent commits made: lost nftables notifications
    /// that cover only our own commits hide nothing (see `rulesetLost`).
    private var seenGeneration: UInt32?
    private var ownGenerations: [UInt32] = []
    /// When the oldest unhandled event arrived (for the latency histogram).
    private var pendingSince: ContinuousClock.Instant?
    /// After a failure, no new attempt before this instant.
    private var retryAfter: ContinuousClock.Instant?
    private var failureStreak = 0
    /// The kernel side as the notifications say it is; nil: read it.
    private var known: KernelSnapshot?
    /// Our last batch's NEWGEN has not been seen yet (its generation is unknown).
    private var awaitingOwnCommit = false
    private var latencies = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    /// Coherence: which host changes can make an offloaded flow wrong, and
    /// when the re-evaluation they call for is due.
    private var coherence = CoherenceWatch()
    public private(set) var scheduler: ReevaluationScheduler

    public init(topologySource: any TopologySource, backend: any RulesetBackend, store: IntentStore,
                logger: Logger, metrics: DaemonMetrics = DaemonMetrics(), ownPID: UInt32 = UInt32(getpid()),
                conntrack: (any ConntrackSource)? = nil,
                coherence settings: ReevaluationScheduler.Settings = .init(), declared: Intent = Intent()) throws
    {
        self.declared = declared
        self.topologySource = topologySource
        self.backend = backend
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.ownPID = ownPID
        self.conntrack = conntrack
        scheduler = ReevaluationScheduler(settings: settings)
        intent = try store.load().merging(declared)
    }

    /// True when `step()` has work to do now.
    /// A due re-evaluation waits for a pending reconcile (it recreates the
    /// flowtable the reconcile brings up to date).
    public func hasWork(now: ContinuousClock.Instant = .now) -> Bool {
        guard pending || resyncReason != nil else { return scheduler.ready(now: now) }
        if let retryAfter, now < retryAfter { return false }
        return true
    }

    /// How long the loop may sleep before `step()` must run again.
    public func sleepBudget(now: ContinuousClock.Instant = .now) -> Duration? {
        guard pending || resyncReason != nil else { return scheduler.due().map { max(.zero, $0 - now) } }
        guard let retryAfter else { return .zero }
        return max(.zero, retryAfter - now)
    }

    /// The neighbours and bridge FDB as they are at start: the coherence
    /// watch compares the first changes with them.
    public func seedCoherence(_ events: [TopologyEvent]) {
        var fdb: [(mac: String, port: Int32)] = []
        var neighbours: [(CoherenceWatch.NeighbourKey, String)] = []
        for event in events {
            switch event {
            case .fdb(let mac, let port, false): fdb.append((mac, port))
            case .neighbour(let index, let address, let lladdr?, false):
                neighbours.append((CoherenceWatch.NeighbourKey(index: index, address: address), lladdr))
            default: break
            }
        }
        coherence.seed(fdb: fdb, neighbours: neighbours)
    }

    /// The devices the current plan serves (what the coherence watch looks
    /// at), kept with the plan it comes from.
    private var served = CoherenceWatch.Served()

    // MARK: Input

    public func receive(_ events: [TopologyEvent], at instant: ContinuousClock.Instant = .now) {
        guard !events.isEmpty else { return }
        counters.events += events.count
        var changesPlan = false
        for event in events {
            if scheduler.settings.automatic, let topology {
                let causes = coherence.causes(for: event, topology: topology, served: served)
                if !causes.isEmpty, logger.logLevel <= .debug {
                    logger.debug("re-evaluation due", metadata: ["causes": "\(causes)", "event": "\(event)"])
                }
                scheduler.note(causes, at: instant)
            }
            // Only links, routes and lost events can change the plan; the
            // rest matters to the coherence watch alone.
            switch event {
            case .link, .linkRemoved:
                metrics.events(.link)
                noteRouteCarrier(event)
                forgetUnhookedDevice(event)
                topology?.apply(event)
                changesPlan = true
            case .route(let change):
                metrics.events(.route)
                // Routes decide the uplinks. The notification itself updates
                // the routes; only one it cannot settle costs a route dump.
                if change.matters {
                    if topology?.apply(change) == false { routesStale = true }
                    changesPlan = true
                }
            case .nexthopRemoved:
                metrics.events(.route)
                routesStale = true
                changesPlan = true
            case .lost(let reason):
                metrics.events(.lost)
                requestResync(.eventsLost("rtnetlink events lost: \(reason)"))
                // A port move or a VLAN change may be among them.
                if scheduler.settings.automatic, !intent.isEmpty {
                    scheduler.note([.eventsLost(source: "rtnetlink")], at: instant)
                }
                changesPlan = true
            case .bridgePort, .bridgeVLANChanged:
                metrics.events(.bridge)
            case .fdb, .neighbour:
                metrics.events(.neighbour)
            }
        }
        if changesPlan { markPending(at: instant) }
    }

    public func receive(_ events: [RulesetEvent], at instant: ContinuousClock.Instant = .now) {
        for event in events {
            switch event {
            case .commit(let commit):
                seenGeneration = commit.generation
                if commit.pid == ownPID {
                    if awaitingOwnCommit, known != nil {
                        known?.generation = commit.generation
                        awaitingOwnCommit = false
                    }
                    continue
                }
                if awaitingOwnCommit || commit.tables.contains(FlowctlNames.table) {
                    known = nil
                } else {
                    // Another table changed: ours is as we left it; a later
                    // forward chain may have appeared, so those are read again.
                    known?.generation = commit.generation
                    known?.laterForwardChains = nil
                }
                metrics.events(.nftables)
                counters.events += 1
                if scheduler.settings.automatic {
                    // Any commit may have changed what is allowed: send the
                    // offloaded flows past the current rules again.
                    scheduler.note([.rulesetCommit(pid: commit.pid, tables: commit.tables.map(\.description).sorted())],
                                   at: instant)
                }
                if commit.tables.contains(FlowctlNames.table) {
                    logger.warning("table \(FlowctlNames.table) changed by another process; restoring it",
                                   metadata: ["pid": "\(commit.pid)", "generation": "\(commit.generation)"])
                }
                // Any foreign commit may have touched flowctl's table or added a
                // later forward chain: re-read the kernel side (cheap when equal).
                markPending(at: instant)
            case .lost(let reason):
                metrics.events(.lost)
                rulesetLost(reason, at: instant)
            }
        }
    }

    /// A link that carries a route going down or away: the kernel
    /// flushes its IPv4 routes without a notification (checked in the lab,
    /// Tests/lab/churn-e2e.sh), so the routes are read again.
    private func noteRouteCarrier(_ event: TopologyEvent) {
        guard let topology else { return }
        let index: Int32
        switch event {
        case .link(let after):
            guard let before = topology.link(index: after.index), before.isUp != after.isUp else { return }
            index = after.index
        case .linkRemoved(let removed, _):
            index = removed
        default:
            return
        }
        if topology.routes.contains(where: { $0.outputIndices.contains(index) }) { routesStale = true }
    }

    /// A deleted device leaves the kernel's flowtable by itself on some
    /// kernels (6.12 unhooks it) and stays listed on others: what the
    /// notifications told us of the table is no longer sure; read it.
    private func forgetUnhookedDevice(_ event: TopologyEvent) {
        guard case .linkRemoved(_, let name) = event,
              known?.table?.flowtables.contains(where: { $0.devices.contains(name) }) == true else { return }
        known = nil
    }

    /// nftables notifications were lost. The links and routes are not
    /// concerned (no full resync): the table is read again. Whether a
    /// foreign commit may be among the lost ones is told by the generation:
    /// the kernel cannot send the notification of a flowtable with a few
    /// hundred devices (it does not fit one message; every listener gets
    /// ENOBUFS instead, checked in the lab), so each of our re-evaluations at
    /// 1,000 ports loses its own notification. When every generation since
    /// the last one notified is one of our commits, nothing foreign was
    /// missed; otherwise offloaded flows are re-evaluated (Coherence).
    private func rulesetLost(_ reason: String, at instant: ContinuousClock.Instant) {
        known = nil
        awaitingOwnCommit = false
        markPending(at: instant)
        var onlyOwn = false
        if let seen = seenGeneration, let current = try? backend.generation() {
            let missed = current &- seen
            onlyOwn = missed <= UInt32(ownGenerations.count)
                && (0..<missed).allSatisfy { ownGenerations.contains(seen &+ $0 &+ 1) }
            if onlyOwn { seenGeneration = current }
        }
        if onlyOwn {
            logger.debug("nftables notifications lost (\(reason)); only flowctl's own commits were among them")
            return
        }
        logger.warning("nftables notifications lost (\(reason)); reading flowctl's table again\(scheduler.settings.automatic && !intent.isEmpty ? " and re-evaluating offloaded flows" : "")")
        if scheduler.settings.automatic, !intent.isEmpty {
            scheduler.note([.eventsLost(source: "nftables")], at: instant)
        }
    }

    public func requestResync(_ reason: ResyncReason) {
        known = nil
        if resyncReason == nil { resyncReason = reason }
    }

    private func markPending(at instant: ContinuousClock.Instant) {
        if !pending { pendingSince = instant }
        pending = true
    }

    // MARK: Work

    /// One reconcile pass if there is work; returns the outcome when a pass ran.
    @discardableResult
    public func step(now: ContinuousClock.Instant = .now) -> ReconcileOutcome? {
        let outcome = reconcileStep(now: now)
        if scheduler.ready(now: now), resyncReason == nil, !pending {
            if let due = scheduler.take(now: now) { reevaluate(due.causes, since: due.since) }
        }
        return outcome
    }

    private func reconcileStep(now: ContinuousClock.Instant) -> ReconcileOutcome? {
        guard pending || resyncReason != nil else { return nil }
        if let retryAfter, now < retryAfter { return nil }
        let started = ContinuousClock.now
        let reason = resyncReason
        do {
            if reason != nil || topology == nil {
                topology = try topologySource.snapshot()
                routesStale = false
                counters.resyncs += 1
                metrics.resync(reason: reason ?? .start)
                logger.info("full resync", metadata: ["reason": "\(reason ?? .start)"])
            } else if routesStale {
                topology?.routes = try topologySource.routes()
                routesStale = false
                counters.routeReads = (counters.routeReads ?? 0) + 1
            }
            let outcome = try reconcile(intent: intent)
            if outcome.applied, outcome.batch.changes.contains(where: { if case .addFlowtable = $0 { true } else { false } }) {
                // The flowtable was created (a repair after `nft delete table`,
                // say): every flow meets the current rules anyway.
                scheduler.discardPending()
            }
            resyncReason = nil
            pending = false
            failureStreak = 0
            retryAfter = nil
            if let since = pendingSince, !outcome.batch.isEmpty {
                let elapsed = ContinuousClock.now - since
                metrics.latency(elapsed)
                _ = latencies.record(UInt64(max(0, elapsed.nanoseconds / 1000)))
                latencySummaryStale = true
            }
            if reason != nil {
                counters.lastResyncMicroseconds = Double((ContinuousClock.now - started).nanoseconds) / 1000
            }
            pendingSince = nil
            metrics.passDuration(ContinuousClock.now - started)
            return outcome
        } catch {
            counters.errors += 1
            counters.lastError = "\(error)"
            metrics.error()
            if let topology, let planned = try? Planner().plan(intent: intent, topology: topology).desired?.flowtable.devices {
                let inKernel = Set((try? backend.table(FlowctlNames.table))?.flowtables.first?.devices ?? [])
                metrics.devices(inKernel.count, missing: planned.filter { !inKernel.contains($0) }.count)
            }
            failureStreak += 1
            // Back off 2 ms, 4 ms ... up to 5 s, and start over from dumps. The
            // first retries are quick: a device announced by RTM_NEWLINK while
            // the creating command still holds RTNL can be refused (ENOENT) for
            // a moment.
            let delay = Duration.milliseconds(min(5000, 2 << min(failureStreak - 1, 12)))
            // From the later of the pass's start and now (tests pass a `now` ahead of the clock).
            retryAfter = max(now, ContinuousClock.now) + delay
            // A device refused right after its RTM_NEWLINK (ENOENT) is usually
            // there a moment later: retry from the cached topology first; a
            // failure that persists starts over from full dumps.
            if !(Self.isDeviceNotFound(error) && failureStreak <= 3) {
                resyncReason = .failure("previous pass failed")
            }
            logger.error("reconcile failed; full resync in \(delay)", metadata: ["error": "\(error)"])
            return nil
        }
    }

    static func isDeviceNotFound(_ error: any Error) -> Bool {
        if case ReconcileError.unstable(_, let last) = error { return last.error.errno == KernelError.ENOENT }
        return false
    }

    // MARK: Coherence

    /// Sends every offloaded flow back through the slow path once (the
    /// flowtable is recreated in one batch with any pending device change).
    @discardableResult
    func reevaluate(_ causes: [ReevaluationCause], since: ContinuousClock.Instant) -> ReevaluationRecord? {
        guard !intent.isEmpty, !causes.isEmpty else { return nil }
        let flows = offloadedFlowsEstimate.map { $0() } ?? (try? conntrack?.offloadedFlows())
        do {
            if topology == nil { topology = try topologySource.snapshot() }
            let outcome = try reconcile(intent: intent, reevaluate: true)
            guard outcome.applied else { return nil }
            let latency = Double((ContinuousClock.now - since).nanoseconds) / 1000
            let record = ReevaluationRecord(time: Date().timeIntervalSince1970, causes: causes, flows: flows,
                                            latencyMicroseconds: latency)
            counters.reevaluations += 1
            counters.lastReevaluation = record
            metrics.reevaluation(kinds: record.causeKinds, flows: flows)
            logger.notice("\(record.line)", metadata: ["latency_ms": "\(Int(latency / 1000))"])
            return record
        } catch {
            counters.errors += 1
            counters.lastError = "\(error)"
            metrics.error()
            // Not lost: tried again after the scheduler's interval; from full
            // dumps unless a device vanished mid-batch (the view is pruned).
            scheduler.note(causes, at: since)
            if !Self.isDeviceNotFound(error) { requestResync(.failure("re-evaluation failed")) }
            logger.error("re-evaluation failed; retrying", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// `flowctl reevaluate` through the control socket: validated against a
    /// fresh topology, applied at once (no coalescing, no rate limit).
    public func reevaluateNow(bridges: [String], ports: [String]) throws -> ReevaluationRecord {
        let fresh = try topologySource.snapshot()
        let cause = try ReevaluationTarget.validate(bridges: bridges, ports: ports, intent: intent, topology: fresh)
        topology = fresh
        guard let record = reevaluate([cause], since: .now) else {
            throw KernelError(operation: "re-evaluate offloaded flows", errno: 0,
                              reason: counters.lastError ?? "the flowtable could not be recreated")
        }
        return record
    }

    private func reconcile(intent: Intent, required: Set<String> = [], reevaluate: Bool = false) throws -> ReconcileOutcome {
        guard let topology else { throw KernelError(operation: "reconcile", errno: 0, reason: "no topology yet") }
        let previous = lastOutcome?.plan
        let source = topologySource
        let view = PruningTopologyView(topology) { source.interfaceIndex(of: $0) }
        var reconciler = Reconciler(topology: view, backend: backend)
        // Each retry starts from a pruned view and a fresh table: under heavy
        // churn (hundreds of deletions a second) a few more attempts finish
        // the pass instead of failing it. A re-evaluation (the whole
        // flowtable in one batch, the longest window for a device to vanish
        // in) gets two and is retried by its scheduler, so it never holds up
        // the small passes of other events for long.
        reconciler.maxAttempts = reevaluate ? 2 : 6
        let cached = awaitingOwnCommit ? nil : known
        known = nil
        defer {
            // Devices found gone are gone from our view too.
            if !view.pruned.isEmpty {
                self.topology = view.topology
                counters.vanishedDevices = (counters.vanishedDevices ?? 0) + view.pruned.count
                logger.debug("devices gone before their removal was announced", metadata: ["devices": "\(view.pruned)"])
            }
        }
        do {
            let outcome = try reconciler.reconcile(intent: intent, required: required, known: cached,
                                                   reevaluate: reevaluate, hardwareRefusal: hardwareRefusal)
            record(outcome, previous: previous)
            if outcome.applied {
                // The batch was sent against `generation` and checked: it made the next.
                ownGenerations.append(outcome.generation &+ 1)
                if ownGenerations.count > 64 { ownGenerations.removeFirst(ownGenerations.count - 64) }
            }
            // What the kernel has now, for the next pass; the generation of
            // our own commit arrives with its notification.
            known = KernelSnapshot(generation: outcome.generation, table: outcome.predictedTable,
                                   laterForwardChains: outcome.laterForwardChains)
            if outcome.predictedTable == nil && outcome.applied { known = nil }
            awaitingOwnCommit = outcome.applied && known != nil
            return outcome
        } catch {
            if logger.logLevel <= .debug, let batch = try? Differ().diff(
                kernel: try? backend.table(FlowctlNames.table),
                desired: try? Planner().plan(intent: intent, topology: topology, hardwareRefusal: hardwareRefusal).desired)
            {
                logger.debug("batch that failed", metadata: ["commands": "\(NftText.commands(batch).map { BatchError.abbreviated($0, limit: 400) })"])
                if case ReconcileError.unstable(_, let last) = error, case .addFlowtableDevices(_, let devices)? = last.change {
                    let now = "\(devices.count) devices, gone now: \(devices.filter { topologySource.interfaceIndex(of: $0) == nil })"
                    logger.debug("refused devices on the host now", metadata: ["devices": "\(now)"])
                }
            }
            throw error
        }
    }

    private func record(_ outcome: ReconcileOutcome, previous: Plan?) {
        if outcome.fellBackToSoftware, let refusal = outcome.hardwareRefusal {
            counters.hardwareFallbacks = (counters.hardwareFallbacks ?? 0) + 1
            metrics.hardwareFallback()
            logger.warning("\(refusal.reason); using software offload until another device joins or an enable asks again")
        }
        hardwareRefusal = outcome.hardwareRefusal
        if outcome.applied {
            counters.batches += 1
            metrics.batch()
            for line in ChangeLog.lines(for: outcome.batch, plan: outcome.plan, previous: previous,
                                            kernel: outcome.kernelBefore) {
                logger.notice("\(line)")
            }
        }
        for warning in outcome.warnings where !(lastOutcome?.warnings.contains(warning) ?? false) {
            logger.warning("\(warning)")
        }
        metrics.devices(outcome.plan.desired?.flowtable.devices.count ?? 0, missing: 0)
        if outcome.plan != lastOutcome?.plan { served = CoherenceWatch.Served(plan: outcome.plan) }
        lastOutcome = outcome
    }

    /// enable/disable through the control socket: the same all-or-nothing
    /// transaction as the one-shot commands, against the daemon's topology
    /// (read fresh first, so a device created a moment ago is known).
    public func change(required: Set<String>, _ edit: (inout Intent) throws -> Void) throws
        -> (intent: Intent, outcome: ReconcileOutcome)
    {
        topology = try topologySource.snapshot()
        let previous = lastOutcome?.plan
        let reconciler = Reconciler(topology: FixedTopologySource(topology!), backend: backend)
        // An enable (it names the bridge that must be usable) asks for
        // hardware again; a disable keeps what the kernel refused.
        let result = try IntentTransaction.run(store: store, reconciler: reconciler, required: required,
                                               hardwareRefusal: required.isEmpty ? hardwareRefusal : nil,
                                               declared: declared, edit)
        intent = result.intent.merging(declared)
        record(result.outcome, previous: previous)
        known = nil
        awaitingOwnCommit = false
        pending = false
        resyncReason = nil
        return (intent, result.outcome)
    }

    /// SIGHUP with a changed configuration file: new declared bridges (in
    /// effect with the next `reloadIntent`) and coherence settings.
    public func reconfigure(declared: Intent, coherence: ReevaluationScheduler.Settings) {
        self.declared = declared
        scheduler.settings = coherence
    }

    /// Reloads the stored intent (SIGHUP, or the file changed by a one-shot run).
    public func reloadIntent() throws {
        let loaded = try store.load().merging(declared)
        if loaded != intent {
            intent = loaded
            logger.info("intent reloaded", metadata: ["bridges": "\(loaded.bridgeNames)"])
            markPending(at: .now)
        }
    }
}

/// Percentiles of a latency histogram, in microseconds.
public struct LatencySummary: Codable, Sendable, Hashable {
    public var count: UInt64
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var max: UInt64

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        p50 = histogram.valueAtPercentile(50)
        p90 = histogram.valueAtPercentile(90)
        p99 = histogram.valueAtPercentile(99)
        max = histogram.max
    }
}



