/// The two kernel edges as protocols, so orchestration is testable with the
/// fakes in FlowctlTesting. FlowctlLinux implements them with libnl-route-3
/// and libnftnl/libmnl.
#if canImport(Glibc)
import Glibc
#endif

/// An error the kernel (or a netlink library) returned.
public struct KernelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was being done, in the user's terms ("add flowtable inet flowctl fastpath").
    public var operation: String
    public var errno: Int32
    /// The system's text for errno.
    public var reason: String
    /// What to do about it, when known.
    public var hint: String?

    public init(operation: String, errno: Int32, reason: String, hint: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.reason = reason
        self.hint = hint
    }

    public var description: String {
        "\(operation): \(reason)" + (hint.map { " (\($0))" } ?? "")
    }

    // errno values the orchestration reacts to, from the C library.
    public static let ENOENT = Glibc.ENOENT
    public static let EPERM = Glibc.EPERM
    public static let EACCES = Glibc.EACCES
    public static let EBUSY = Glibc.EBUSY
    public static let EEXIST = Glibc.EEXIST
    public static let EOPNOTSUPP = Glibc.EOPNOTSUPP
    public static let ENOBUFS = Glibc.ENOBUFS
    /// The batch's generation id no longer matches: the ruleset changed under us.
    public static let ERESTART = Glibc.ERESTART

    public var isPermission: Bool { errno == Self.EPERM || errno == Self.EACCES }

    /// A system call that failed with `code`, in the system's words: the one
    /// way every layer turns an errno into an error.
    public static func system(_ operation: String, _ code: Int32, hint: String? = nil) -> KernelError {
        KernelError(operation: operation, errno: code, reason: String(cString: strerror(code)), hint: hint)
    }
}

/// A failed batch: which step the kernel refused.
public struct BatchError: Error, Hashable, Sendable, CustomStringConvertible {
    public var change: NftChange?
    public var command: String?
    public var error: KernelError

    public init(change: NftChange?, command: String?, error: KernelError) {
        self.change = change
        self.command = command
        self.error = error
    }

    public var description: String {
        if let command {
            return "kernel refused `\(Self.abbreviated(command))`: \(error.reason)" + (error.hint.map { " (\($0))" } ?? "")
        }
        return error.description
    }
}

extension BatchError {
    /// A command with thousands of device names is cut for the one-line error.
    public static func abbreviated(_ command: String, limit: Int = 240) -> String {
        guard command.count > limit else { return command }
        return String(command.prefix(limit)) + " … (\(command.count - limit) more characters)"
    }
}

/// Reads the host's links and routes.
public protocol TopologySource: Sendable {
    func snapshot() throws -> Topology
    /// The routes alone (the daemon re-reads them after a default route or
    /// a link that carries routes changed: IPv4 routes flushed by a link
    /// going down are not notified).
    func routes() throws -> [Route]
    /// The index a device of this name has now; nil when there is none.
    /// The daemon asks when the kernel refused a device it believes exists.
    func interfaceIndex(of name: String) -> Int32?
}

extension TopologySource {
    public func routes() throws -> [Route] { try snapshot().routes }
    public func interfaceIndex(of name: String) -> Int32? { (try? snapshot())?.link(named: name)?.index }
}

/// flowctl's view of nf_tables.
public protocol RulesetBackend: Sendable {
    /// The ruleset generation id (NFT_MSG_GETGEN).
    func generation() throws -> UInt32
    /// One table with its flowtables, sets, chains and rules; nil when absent.
    func table(_ ref: TableRef) throws -> KernelTable?
    /// Every base chain on a forward hook in the ip, ip6 and inet families.
    func forwardChains() throws -> [ForwardChainInfo]
    /// Sends the batch atomically; with a generation, the kernel refuses it
    /// (ERESTART) if the ruleset changed since that generation.
    func apply(_ batch: NftBatch, generation: UInt32?) throws
    /// Dry run: the kernel checks every step of the batch and then aborts
    /// it (a batch without BATCH_END, as `nft --check` does); nothing is
    /// ever committed. Throws the first refusal like `apply`.
    func validate(_ batch: NftBatch) throws
}

/// Conntrack figures for `status`.
public struct ConntrackSummary: Hashable, Sendable, Codable {
    /// Entries dumped through ctnetlink.
    public var entries: Int
    /// Entries with IPS_OFFLOAD (software or hardware).
    public var offloaded: Int
    /// Entries with IPS_HW_OFFLOAD.
    public var hardwareOffloaded: Int
    /// nf_conntrack_count and nf_conntrack_max (nil when unreadable).
    public var count: Int?
    public var max: Int?

    public init(entries: Int, offloaded: Int, hardwareOffloaded: Int, count: Int?, max: Int?) {
        self.entries = entries
        self.offloaded = offloaded
        self.hardwareOffloaded = hardwareOffloaded
        self.count = count
        self.max = max
    }

    /// count / max, when both are known.
    public var fill: Double? {
        guard let count, let max, max > 0 else { return nil }
        return Double(count) / Double(max)
    }

    public static let warningFill = 0.8

    /// The table is 80% full or more (status, doctor, the daemon's log and metric).
    public var isNearlyFull: Bool { (fill ?? 0) >= Self.warningFill }

    /// The one warning for a nearly full table; nil below 80%.
    public var fillWarning: String? {
        guard isNearlyFull, let count, let max, let fill else { return nil }
        return "conntrack table \(Int(fill * 100))% full (\(count) of nf_conntrack_max \(max)): new flows will be dropped when it fills; raise net.netfilter.nf_conntrack_max"
    }
}

public protocol ConntrackSource: Sendable {
    func summary() throws -> ConntrackSummary
    /// Entries offloaded now (IPS_OFFLOAD), filtered by the kernel where it can.
    func offloadedFlows() throws -> Int
    /// nf_conntrack_count and nf_conntrack_max alone: cheap, copies no entry.
    func capacity() -> (count: Int?, max: Int?)
}

extension ConntrackSource {
    public func offloadedFlows() throws -> Int { try summary().offloaded }
    public func capacity() -> (count: Int?, max: Int?) {
        guard let summary = try? summary() else { return (nil, nil) }
        return (summary.count, summary.max)
    }
}
