/// Coherence: an offloaded flow never outlives the policy or topology that
/// admitted it. Pure: which host changes call for a re-evaluation, how a
/// burst of them is coalesced, and what a one-shot `reevaluate` may name.
///
/// The mechanism is always the same (see Differ.diff `reevaluate:`):
/// flowctl's flowtable is deleted and created again in one atomic batch.
/// The kernel tears down every flow of a deleted flowtable, so each
/// offloaded flow's next packet goes through the slow path once, with its
/// conntrack entry (state, NAT mapping, marks) intact; the current rules
/// and bridge state decide, and flows still allowed are offloaded again on
/// that packet. The kernel offers no narrower tool that keeps conntrack
/// state: removing a device from a flowtable and adding it back leaves its
/// flows offloaded, a flow's devices are not visible outside the
/// flowtable, and the per-device teardown runs only when a device goes
/// down (checked in the lab; README, Coherence).

/// Why offloaded flows were sent back through the slow path.
public enum ReevaluationCause: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Another process committed an nftables change (any table, any family).
    case rulesetCommit(pid: UInt32, tables: [String])
    /// A port's (or the bridge's own) VLAN membership, PVID or STP state changed.
    case bridgePort(device: String, bridge: String, change: String)
    /// A MAC address moved from one port to another.
    case macMoved(mac: String, bridge: String, from: String, to: String)
    /// A port left its bridge (or moved to another one).
    case portLeft(port: String, bridge: String)
    /// A device the flows go through (bridge, VLAN upper, routed uplink)
    /// went down or was deleted; real devices are torn down by the kernel.
    case deviceDown(device: String)
    case mtuChanged(device: String, from: UInt32, to: UInt32)
    /// A neighbour's link-layer address changed (cached by direct paths).
    case neighbour(address: String, device: String, from: String, to: String)
    /// A route changed (direct paths through bridges and VLANs cache it).
    case route(String)
    /// `flowctl reevaluate` or the control request.
    case requested(bridges: [String], ports: [String])
    /// Notifications were lost (ENOBUFS): any change may have been missed.
    case eventsLost(source: String)

    /// The metric label (`flowctl_reevaluations_total{cause}`).
    public var kind: String {
        switch self {
        case .rulesetCommit: "nftables"
        case .bridgePort: "bridge_port"
        case .macMoved: "fdb"
        case .portLeft, .deviceDown, .mtuChanged: "link"
        case .neighbour: "neighbour"
        case .route: "route"
        case .requested: "requested"
        case .eventsLost: "lost"
        }
    }

    public var description: String {
        switch self {
        case .rulesetCommit(let pid, let tables):
            "nftables commit by pid \(pid)" + (tables.isEmpty ? "" : " (\(tables.joined(separator: ", ")))")
        case .bridgePort(let device, let bridge, let change):
            device == bridge ? "\(bridge): \(change)" : "\(device) (port of \(bridge)): \(change)"
        case .macMoved(let mac, let bridge, let from, let to): "\(mac) moved from \(from) to \(to) on \(bridge)"
        case .portLeft(let port, let bridge): "\(port) left \(bridge)"
        case .deviceDown(let device): "\(device) went down"
        case .mtuChanged(let device, let from, let to): "\(device): MTU \(from) -> \(to)"
        case .neighbour(let address, let device, let from, let to): "neighbour \(address) on \(device): \(from) -> \(to)"
        case .route(let route): "route \(route) changed"
        case .requested(let bridges, let ports):
            "requested" + (bridges.isEmpty && ports.isEmpty ? ""
                : " for " + (bridges + ports.map { "port \($0)" }).joined(separator: ", "))
        case .eventsLost(let source): "\(source) notifications lost"
        }
    }
}

/// One re-evaluation, for logs, `status` and the control protocol.
public struct ReevaluationRecord: Hashable, Sendable, Codable {
    /// Seconds since 1970 (wall clock), when it was applied.
    public var time: Double
    public var causes: [String]
    public var causeKinds: [String]
    /// Offloaded flows just before (conntrack IPS_OFFLOAD); nil when unreadable.
    public var flows: Int?
    /// From the first coalesced cause to the acknowledged batch.
    public var latencyMicroseconds: Double
    public var scope: String

    public init(time: Double, causes: [ReevaluationCause], flows: Int?, latencyMicroseconds: Double) {
        self.time = time
        self.causes = causes.map(\.description)
        self.causeKinds = Array(Set(causes.map(\.kind))).sorted()
        self.flows = flows
        self.latencyMicroseconds = latencyMicroseconds
        self.scope = ReevaluationRecord.flowtableScope
    }

    public static let flowtableScope = "flowtable \(FlowctlNames.table) \(FlowctlNames.flowtable)"

    /// "12 offloaded flows re-evaluated (flowtable inet flowctl fastpath recreated): CAUSES"
    public var line: String {
        let count = flows.map { "\($0) offloaded flow" + ($0 == 1 ? "" : "s") } ?? "offloaded flows"
        let shown = causes.prefix(3).joined(separator: "; ") + (causes.count > 3 ? "; and \(causes.count - 3) more" : "")
        return "\(count) re-evaluated (\(scope) recreated): \(shown)"
    }
}
