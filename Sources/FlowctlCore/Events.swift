/// What the daemon hears from the kernel, as values. FlowctlLinux turns
/// rtnetlink and nftables notifications into these.

/// A change of the host's links or routes (rtnetlink RTNLGRP_LINK,
/// RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE).
public enum TopologyEvent: Hashable, Sendable {
    /// RTM_NEWLINK: a device appeared or changed (master, state, name...).
    case link(Link)
    /// RTM_DELLINK.
    case linkRemoved(index: Int32, name: String)
    /// RTM_NEWROUTE / RTM_DELROUTE of a forwarding route; a default route
    /// moves the uplinks.
    case route(RouteChange)
    /// RTM_DELNEXTHOP: the kernel deletes the routes through a deleted
    /// nexthop object without announcing them (checked in the lab,
    /// Tests/lab/reach-e2e.sh), so the routes are read again.
    case nexthopRemoved(id: UInt32)
    /// AF_BRIDGE RTM_NEWLINK: a bridge port's (or the bridge's own) VLANs
    /// and STP state. Not a link: it carries no kind.
    case bridgePort(index: Int32, BridgePortInfo)
    /// RTM_NEWVLAN / RTM_DELVLAN on a port or a bridge.
    case bridgeVLANChanged(index: Int32)
    /// A bridge FDB entry (AF_BRIDGE RTM_NEWNEIGH / RTM_DELNEIGH) learned on `port`.
    case fdb(mac: String, port: Int32, removed: Bool)
    /// An IPv4 or IPv6 neighbour (RTM_NEWNEIGH / RTM_DELNEIGH).
    case neighbour(index: Int32, address: String, lladdr: String?, removed: Bool)
    /// Notifications were lost (ENOBUFS) or could not be decoded: only a
    /// full dump tells the truth now.
    case lost(reason: String)
}

/// A commit to nf_tables by any process (NFT_MSG_NEWGEN on NFNLGRP_NFTABLES).
public struct RulesetCommit: Hashable, Sendable {
    /// The new ruleset generation.
    public var generation: UInt32
    /// The committing process (NFTA_GEN_PROC_PID).
    public var pid: UInt32
    /// Tables the transaction touched (from its object notifications).
    public var tables: Set<TableRef>

    public init(generation: UInt32, pid: UInt32, tables: Set<TableRef>) {
        self.generation = generation
        self.pid = pid
        self.tables = tables
    }
}

public enum RulesetEvent: Hashable, Sendable {
    case commit(RulesetCommit)
    /// Notifications were lost: re-read the kernel.
    case lost(reason: String)
}

/// A source of topology events with a file descriptor to poll on.
public protocol TopologyEventSource: AnyObject {
    /// The descriptor that becomes readable when events are pending.
    var pollDescriptor: Int32 { get }
    /// Reads every pending event without blocking.
    func drain() throws -> [TopologyEvent]
    /// The neighbours and bridge FDB as events, from dumps (the coherence
    /// watch's starting point).
    func baseline() throws -> [TopologyEvent]
}

extension TopologyEventSource {
    public func baseline() throws -> [TopologyEvent] { [] }
}

public protocol RulesetEventSource: AnyObject {
    var pollDescriptor: Int32 { get }
    func drain() throws -> [RulesetEvent]
}

extension Topology {
    /// The topology after one link event (routes are re-read separately).
    public mutating func apply(_ event: TopologyEvent) {
        switch event {
        case .link(var link):
            // Events do not carry ethtool features: keep what the dump read.
            if link.hwTCOffload == nil { link.hwTCOffload = self.link(index: link.index)?.hwTCOffload }
            upsert(link)
        case .linkRemoved(let index, _):
            remove(index: index)
        case .route, .nexthopRemoved, .bridgePort, .bridgeVLANChanged, .fdb, .neighbour, .lost:
            break
        }
    }
}
