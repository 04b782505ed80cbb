import FlowctlCore
// TEMPORARY scaffold, replaced by the libnftnl implementation.
public struct NftablesBackend: RulesetBackend {
    public init() {}
    static func todo() -> KernelError { KernelError(operation: "nftables", errno: KernelError.EOPNOTSUPP, reason: "not implemented yet") }
    public func generation() throws -> UInt32 { throw Self.todo() }
    public func table(_ ref: TableRef) throws -> KernelTable? { throw Self.todo() }
    public func forwardChains() throws -> [ForwardChainInfo] { throw Self.todo() }
    public func apply(_ batch: NftBatch, generation: UInt32?) throws { throw Self.todo() }
    public func validate(_ batch: NftBatch) throws { throw Self.todo() }
}
