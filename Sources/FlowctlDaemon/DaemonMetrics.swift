import FlowctlCore
import Prometheus

/// Where a notification came from (`flowctl_events_total{source}`).
public enum EventSource: String, CaseIterable, Sendable {
    case link, route, bridge, neighbour, nftables, lost
}

/// Why the daemon reads everything again (`flowctl_resyncs_total{reason}`).
public enum ResyncReason: Hashable, Sendable, CustomStringConvertible {
    case start
    case periodic
    /// Notifications were lost (ENOBUFS, undecodable).
    case eventsLost(String)
    /// A pass or a re-evaluation failed.
    case failure(String)
    /// Asked for over the control socket.
    case requested

    public static let labels = ["start", "periodic", "lost", "failure", "requested"]

    public var label: String {
        switch self {
        case .start: "start"
        case .periodic: "periodic"
        case .eventsLost: "lost"
        case .failure: "failure"
        case .requested: "requested"
        }
    }

    public var description: String {
        switch self {
        case .start: "start"
        case .periodic: "periodic"
        case .eventsLost(let why), .failure(let why): why
        case .requested: "requested over the control socket"
        }
    }
}

/// Every metric the daemon exports at /metrics, made up front in its
/// Prometheus registry: each with HELP text, each labelled series present
/// from the start at zero (a rate() over a series that appears only at
/// its first increase misses that increase; an alert on absence cannot
/// tell "none yet" from "not exported"), and `flowctl_build_info`.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Event sources, resync reasons and re-evaluation cause kinds: the labels that exist.
    public static let eventSources = EventSource.allCases.map(\.rawValue)
    public static let resyncReasons = ResyncReason.labels
    public static let causeKinds = ["nftables", "bridge_port", "fdb", "link", "neighbour", "route", "requested", "lost"]

    let devices: Gauge
    let batches: Counter
    let errors: Counter
    let hardwareFallbacks: Counter
    let eventCounters: [EventSource: Counter]
    let resyncs: [String: Counter]
    let reevaluations: [String: Counter]
    let reevaluatedFlows: Counter
    let eventToAck: DurationHistogram
    let pass: DurationHistogram
    let conntrackCount: Gauge
    let conntrackMax: Gauge
    let conntrackFillWarning: Gauge
    let offloadedFlows: Gauge
    let hardwareOffloadedFlows: Gauge
    let forwardChainPackets: Gauge
    let devicesMissing: Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), version: String = "unknown") {
        self.registry = registry
        let buckets: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .seconds(1), .seconds(5),
        ]
        Self.gauge(registry, "flowctl_build_info", labels: [("version", version)],
                           help: "Always 1; the version of the running flowctl daemon as a label.").set(to: 1.0)
        devices = Self.gauge(registry, "flowctl_flowtable_devices", labels: [],
                                     help: "Devices in flowctl's flowtable after the last pass.")
        devicesMissing = Self.gauge(registry, "flowctl_flowtable_devices_missing", labels: [],
                                            help: "Planned devices the last pass could not put in the flowtable (0 when all are in place).")
        batches = Self.counter(registry, "flowctl_batches_total", labels: [],
                                       help: "Atomic nftables batches the daemon committed.")
        errors = Self.counter(registry, "flowctl_errors_total", labels: [],
                                      help: "Passes and re-evaluations that failed (retried with backoff).")
        hardwareFallbacks = Self.counter(registry, "flowctl_hardware_offload_fallbacks_total", labels: [],
                                                 help: "Times the kernel refused hardware offload and software was used instead.")
        eventCounters = Dictionary(uniqueKeysWithValues: EventSource.allCases.map { source in
            (source, Self.counter(registry, "flowctl_events_total", labels: [("source", source.rawValue)],
                                          help: "Notifications received, by source (lost: notifications the kernel dropped)."))
        })
        resyncs = Dictionary(uniqueKeysWithValues: Self.resyncReasons.map { reason in
            (reason, Self.counter(registry, "flowctl_resyncs_total", labels: [("reason", reason)],
                                          help: "Full resyncs (dump links, routes and the table), by reason."))
        })
        reevaluations = Dictionary(uniqueKeysWithValues: Self.causeKinds.map { cause in
            (cause, Self.counter(registry, "flowctl_reevaluations_total", labels: [("cause", cause)],
                                         help: "Re-evaluations of offloaded flows (Coherence), by kind of cause."))
        })
        reevaluatedFlows = Self.counter(registry, "flowctl_reevaluated_flows_total", labels: [],
                                                help: "Offloaded flows sent back through the current rules by re-evaluations.")
        eventToAck = Self.histogram(registry, "flowctl_event_to_ack_seconds", labels: [], buckets: buckets,
                                                    help: "From a notification to the kernel's acknowledgement of the batch it called for.")
        pass = Self.histogram(registry, "flowctl_reconcile_seconds", labels: [], buckets: buckets,
                                              help: "Duration of one reconcile pass.")
        conntrackCount = Self.gauge(registry, "flowctl_conntrack_count", labels: [],
                                            help: "Conntrack entries (nf_conntrack_count).")
        conntrackMax = Self.gauge(registry, "flowctl_conntrack_max", labels: [],
                                          help: "Conntrack capacity (nf_conntrack_max).")
        conntrackFillWarning = Self.gauge(registry, "flowctl_conntrack_fill_warning", labels: [],
                                                  help: "1 while conntrack is 80% full or more: new flows are dropped when it is full.")
        offloadedFlows = Self.gauge(registry, "flowctl_offloaded_flows", labels: [],
                                            help: "Conntrack entries offloaded to the fast path (software or hardware).")
        hardwareOffloadedFlows = Self.gauge(registry, "flowctl_offloaded_flows_hardware", labels: [],
                                                    help: "Conntrack entries offloaded to hardware.")
        forwardChainPackets = Self.gauge(registry, "flowctl_forward_chain_packets", labels: [],
                                                 help: "Packets through flowctl's forward chain, the slow path (first packets of flows and what the fast path hands back); restarts at 0 when the table is recreated.")
    }

    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
    static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)],
                        help: String) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, help), labels: labels)
    }
    static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)],
                      help: String) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels)
    }
    static func histogram(_ registry: PrometheusCollectorRegistry, _ name: String, labels: [(String, String)],
                          buckets: [Duration], help: String) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: descriptor(name, help), labels: labels, buckets: buckets)
    }

    // The engine's side.
    func events(_ source: EventSource) { eventCounters[source]!.increment() }
    func resync(reason: ResyncReason) { resyncs[reason.label]!.increment() }
    func batch() { batches.increment() }
    func reevaluation(kinds: [String], flows: Int?) {
        for kind in kinds { reevaluations[kind]?.increment() }
        if let flows { reevaluatedFlows.increment(by: Double(flows)) }
    }
    func error() { errors.increment() }
    func hardwareFallback() { hardwareFallbacks.increment() }
    func devices(_ count: Int, missing: Int) {
        devices.set(to: Double(count))
        devicesMissing.set(to: Double(missing))
    }
    func latency(_ duration: Duration) { eventToAck.record(duration) }
    func passDuration(_ duration: Duration) { pass.record(duration) }

    // The loop's samples.
    func conntrack(_ summary: ConntrackSummary) {
        offloadedFlows.set(to: Double(summary.offloaded))
        hardwareOffloadedFlows.set(to: Double(summary.hardwareOffloaded))
        if let count = summary.count { conntrackCount.set(Double(count)) }
        if let max = summary.max { conntrackMax.set(Double(max)) }
        conntrackFillWarning.set(to: summary.isNearlyFull ? 1 : 0)
    }
    func forwardChain(packets: UInt64) { forwardChainPackets.set(Double(packets)) }
}
