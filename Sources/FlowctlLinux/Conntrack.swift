import FlowctlCore
// TEMPORARY scaffold, replaced by the ctnetlink implementation.
public struct ConntrackReader: ConntrackSource {
    public init() {}
    public func summary() throws -> ConntrackSummary {
        throw KernelError(operation: "dump conntrack", errno: KernelError.EOPNOTSUPP, reason: "not implemented yet")
    }
}
