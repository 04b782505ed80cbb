import FlowctlCore
// TEMPORARY scaffold, replaced by the libnl-route-3 implementation.
public struct RtnetlinkTopologySource: TopologySource {
    public init() {}
    public func snapshot() throws -> Topology {
        throw KernelError(operation: "read links", errno: KernelError.EOPNOTSUPP, reason: "not implemented yet")
    }
}
