import FlowctlCore
// TEMPORARY scaffold, replaced by the libnl-route-3 event subscription.
public final class RtnetlinkMonitor: TopologyEventSource {
    public init() throws {
        throw KernelError(operation: "subscribe to rtnetlink", errno: KernelError.EOPNOTSUPP, reason: "not implemented yet")
    }
    public var pollDescriptor: Int32 { -1 }
    public func drain() throws -> [TopologyEvent] { [] }
}
