/// What `flowctl reevaluate BRIDGE... --port DEV...` may name: enabled
/// bridges and ports of enabled bridges. Nothing named: every enabled bridge.
public enum ReevaluationTarget {
    public enum Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        case nothingEnabled
        case noSuchDevice(String)
        case notABridge(String, LinkKind)
        case notEnabled(String, enabled: [String])
        case notAPort(String, enabled: [String])

        public var description: String {
            switch self {
            case .nothingEnabled: "no bridge is enabled: no flow is offloaded by flowctl"
            case .noSuchDevice(let name): "no such device: \(name)"
            case .notABridge(let name, let kind): "\(name) is not a bridge (it is a \(kind) device)"
            case .notEnabled(let name, let enabled):
                "\(name) is not enabled (enabled: \(enabled.isEmpty ? "none" : enabled.joined(separator: ", ")))"
            case .notAPort(let name, let enabled):
                "\(name) is not a port of an enabled bridge (enabled: \(enabled.joined(separator: ", ")))"
            }
        }
    }

    /// The cause to record, or the first thing that is wrong.
    public static func validate(bridges: [String], ports: [String], intent: Intent, topology: Topology)
        throws(Error) -> ReevaluationCause
    {
        let enabled = intent.bridgeNames
        guard !enabled.isEmpty else { throw .nothingEnabled }
        for bridge in bridges {
            guard let link = topology.link(named: bridge) else { throw .noSuchDevice(bridge) }
            guard link.kind == .bridge else { throw .notABridge(bridge, link.kind) }
            guard intent.key(enabling: bridge) != nil else { throw .notEnabled(bridge, enabled: enabled) }
        }
        for port in ports {
            guard let link = topology.link(named: port) else { throw .noSuchDevice(port) }
            guard let master = link.masterIndex, let bridge = topology.link(index: master),
                  intent.key(enabling: bridge.name) != nil else { throw .notAPort(port, enabled: enabled) }
        }
        return .requested(bridges: bridges, ports: ports)
    }
}

/// `flowctl reevaluate` without a daemon: validate what is named, count
/// the offloaded flows, recreate the flowtable in one batch. A bad name
/// changes nothing.
public enum OneShotReevaluation {
    public static func run(bridges: [String], ports: [String], intent: Intent, topology: any TopologySource,
                           backend: any RulesetBackend, conntrack: any ConntrackSource,
                           clock: () -> Double) throws -> ReevaluationRecord
    {
        let started = ContinuousClock.now
        let snapshot = try topology.snapshot()
        let cause = try ReevaluationTarget.validate(bridges: bridges, ports: ports, intent: intent, topology: snapshot)
        let flows = try? conntrack.offloadedFlows()
        let outcome = try Reconciler(topology: FixedTopologySource(snapshot), backend: backend)
            .reconcile(intent: intent, reevaluate: true)
        guard outcome.applied else {
            // Only when flowctl's flowtable is missing and nothing is to be added.
            throw KernelError(operation: "re-evaluate offloaded flows", errno: 0,
                              reason: "flowctl's flowtable is not in the kernel")
        }
        return ReevaluationRecord(time: clock(), causes: [cause], flows: flows,
                                  latencyMicroseconds: Double((ContinuousClock.now - started).nanoseconds) / 1000)
    }
}
