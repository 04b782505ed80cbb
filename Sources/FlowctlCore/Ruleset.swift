/// The nftables objects flowctl owns, as values: what the planner wants
/// (`DesiredRuleset`), what the kernel has (`KernelTable`), and the steps
/// between them (`NftChange`). FlowctlLinux turns these into libnftnl
/// messages and back.

public enum NftFamily: String, Hashable, Sendable, Codable, CaseIterable {
    case inet, ip, ip6, netdev, bridge, arp
}

public struct TableRef: Hashable, Sendable, Codable, CustomStringConvertible {
    public var family: NftFamily
    public var name: String
    public init(family: NftFamily, name: String) {
        self.family = family
        self.name = name
    }
    public var description: String { "\(family.rawValue) \(name)" }
}

/// Table flags (NFT_TABLE_F_*).
public struct TableFlags: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let dormant = TableFlags(rawValue: 0x1)
    /// The table dies with the netlink socket that created it (5.12+).
    public static let owner = TableFlags(rawValue: 0x2)
    /// With `owner`: the table survives its owner's exit (6.9+).
    public static let persist = TableFlags(rawValue: 0x4)
}

public struct TableSpec: Hashable, Sendable, Codable {
    public var ref: TableRef
    public var flags: TableFlags
    /// Stored as table user data; marks the table as flowctl's own.
    public var comment: String

    public init(ref: TableRef, flags: TableFlags = [], comment: String) {
        self.ref = ref
        self.flags = flags
        self.comment = comment
    }
}

public struct FlowtableSpec: Hashable, Sendable, Codable {
    public var name: String
    /// Priority of the ingress hook the flowtable registers on each device.
    public var priority: Int32
    /// Device names, sorted.
    public var devices: [String]
    /// NFT_FLOWTABLE_COUNTER: keep conntrack counters right for offloaded flows.
    public var counter: Bool
    /// NFT_FLOWTABLE_HW_OFFLOAD (`flags offload`).
    public var hardwareOffload: Bool

    public init(name: String, priority: Int32 = 0, devices: [String], counter: Bool = true,
                hardwareOffload: Bool = false) {
        self.name = name
        self.priority = priority
        self.devices = devices.sorted()
        self.counter = counter
        self.hardwareOffload = hardwareOffload
    }
}

/// A named set of interface names (nft type `ifname`).
public struct InterfaceSetSpec: Hashable, Sendable, Codable {
    public var name: String
    public var elements: [String]
    public init(name: String, elements: [String]) {
        self.name = name
        self.elements = elements.sorted()
    }
}

public enum ChainHook: String, Hashable, Sendable, Codable {
    case prerouting, input, forward, output, postrouting, ingress, egress
}

public struct ChainSpec: Hashable, Sendable, Codable {
    public var name: String
    public var hook: ChainHook
    public var priority: Int32
    public init(name: String, hook: ChainHook, priority: Int32) {
        self.name = name
        self.hook = hook
        self.priority = priority
    }
}

public enum L4Protocol: UInt8, Hashable, Sendable, Codable {
    case tcp = 6
    case udp = 17
    public var name: String { self == .tcp ? "tcp" : "udp" }
}

/// `iifname @set ct direction original meta l4proto P counter flow add @ft comment "id"`
/// (or `oifname`). The id is stored as the rule's comment and names the
/// rule; the diff keeps a kernel rule only when its comment AND its content
/// (`expressions`) are flowctl's, so a rule replaced under flowctl's comment
/// (`nft replace rule ... comment "flowctl/v2 iifname tcp"`) is put back.
/// Change the id whenever the rule's meaning changes.
public struct OffloadRule: Hashable, Sendable, Codable {
    public enum Direction: String, Hashable, Sendable, Codable {
        case input = "iifname"
        case output = "oifname"
    }
    public var chain: String
    public var direction: Direction
    public var l4proto: L4Protocol
    public var interfaceSet: String
    public var flowtable: String

    public init(chain: String, direction: Direction, l4proto: L4Protocol, interfaceSet: String,
                flowtable: String) {
        self.chain = chain
        self.direction = direction
        self.l4proto = l4proto
        self.interfaceSet = interfaceSet
        self.flowtable = flowtable
    }

    /// v2: offloads on original-direction packets only (coherence).
    public var id: String { "flowctl/v2 \(direction.rawValue) \(l4proto.name)" }

    /// The rule's content, one string per expression, as libnftnl prints it
    /// (nftnl_expr_snprintf, default output) after the expression's name:
    /// what `nft --debug=netlink` shows between brackets. The counter is
    /// printed without its values, which the kernel changes. FlowctlLinux
    /// reads the kernel's rules into the same text (KernelRule.expressions),
    /// and its golden test holds this text to the rule it builds and sends.
    public var expressions: [String] {
        [
            "meta load \(direction.rawValue) => reg 1",
            "lookup reg 1 set \(interfaceSet)",
            "ct load direction => reg 1",
            "cmp eq reg 1 \(Self.registerWord(0))",  // IP_CT_DIR_ORIGINAL
            "meta load l4proto => reg 1",
            "cmp eq reg 1 \(Self.registerWord(l4proto.rawValue))",
            "counter",
            "flow_offload flowtable \(flowtable)",
        ]
    }

    /// A one-byte cmp operand as libnftnl prints it: the 32-bit word that
    /// holds the byte first in memory, as a host-order number.
    static func registerWord(_ byte: UInt8) -> String {
        #if _endian(big)
        let word = UInt32(byte) << 24
        #else
        let word = UInt32(byte)
        #endif
        let digits = String(word, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// Everything flowctl wants in the kernel.
public struct DesiredRuleset: Hashable, Sendable, Codable {
    public var table: TableSpec
    public var interfaceSet: InterfaceSetSpec
    public var flowtable: FlowtableSpec
    public var chain: ChainSpec
    public var rules: [OffloadRule]

    public init(table: TableSpec, interfaceSet: InterfaceSetSpec, flowtable: FlowtableSpec,
                chain: ChainSpec, rules: [OffloadRule]) {
        self.table = table
        self.interfaceSet = interfaceSet
        self.flowtable = flowtable
        self.chain = chain
        self.rules = rules
    }
}

// MARK: - What the kernel has

public struct KernelFlowtable: Hashable, Sendable, Codable {
    public var name: String
    public var priority: Int32
    public var devices: [String]
    public var counter: Bool
    public var hardwareOffload: Bool
    public init(name: String, priority: Int32, devices: [String], counter: Bool, hardwareOffload: Bool) {
        self.name = name
        self.priority = priority
        self.devices = devices.sorted()
        self.counter = counter
        self.hardwareOffload = hardwareOffload
    }
}

public struct KernelSet: Hashable, Sendable, Codable {
    public var name: String
    /// nft datatype id (41 = ifname) and key length in bytes.
    public var keyType: UInt32
    public var keyLength: UInt32
    /// Elements decoded as interface names (NUL padding stripped).
    public var elements: [String]
    public init(name: String, keyType: UInt32, keyLength: UInt32, elements: [String]) {
        self.name = name
        self.keyType = keyType
        self.keyLength = keyLength
        self.elements = elements.sorted()
    }
    public static let ifnameType: UInt32 = 41
    public static let ifnameLength: UInt32 = 16
}

public struct KernelChain: Hashable, Sendable, Codable {
    public var name: String
    public var type: String?
    public var hook: ChainHook?
    public var priority: Int32?
    /// true for policy accept (or no policy: a regular chain).
    public var policyAccept: Bool
    public init(name: String, type: String?, hook: ChainHook?, priority: Int32?, policyAccept: Bool = true) {
        self.name = name
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policyAccept = policyAccept
    }
}

public struct KernelRule: Hashable, Sendable, Codable {
    public var chain: String
    public var handle: UInt64
    /// The rule's comment (user data), flowctl's rule id.
    public var comment: String?
    /// The rule's content in the text of `OffloadRule.expressions`; nil when
    /// it was not read (such a rule is never taken for flowctl's).
    public var expressions: [String]?
    /// The rule's counter, when it has one.
    public var packets: UInt64?
    public var bytes: UInt64?
    public init(chain: String, handle: UInt64, comment: String?, expressions: [String]? = nil,
                packets: UInt64? = nil, bytes: UInt64? = nil) {
        self.chain = chain
        self.handle = handle
        self.comment = comment
        self.expressions = expressions
        self.packets = packets
        self.bytes = bytes
    }

    /// Whether this is `rule` as flowctl sent it: its comment and its content.
    public func matches(_ rule: OffloadRule) -> Bool {
        comment == rule.id && expressions == rule.expressions
    }
}

/// One table as dumped from the kernel.
public struct KernelTable: Hashable, Sendable, Codable {
    public var ref: TableRef
    public var flags: TableFlags
    public var comment: String?
    public var flowtables: [KernelFlowtable]
    public var sets: [KernelSet]
    public var chains: [KernelChain]
    /// Rules in chain order.
    public var rules: [KernelRule]

    public init(ref: TableRef, flags: TableFlags = [], comment: String?, flowtables: [KernelFlowtable] = [],
                sets: [KernelSet] = [], chains: [KernelChain] = [], rules: [KernelRule] = []) {
        self.ref = ref
        self.flags = flags
        self.comment = comment
        self.flowtables = flowtables
        self.sets = sets
        self.chains = chains
        self.rules = rules
    }
}

/// A base chain of any table on a forward hook (for the "run last" check).
public struct ForwardChainInfo: Hashable, Sendable, Codable {
    public var table: TableRef
    public var chain: String
    public var priority: Int32
    public init(table: TableRef, chain: String, priority: Int32) {
        self.table = table
        self.chain = chain
        self.priority = priority
    }
}

// MARK: - Changes

/// One step of a batch; FlowctlLinux maps each to one netlink message.
public enum NftChange: Hashable, Sendable, Codable {
    case addTable(TableSpec)
    case deleteTable(TableRef)
    /// Creates the flowtable with its devices.
    case addFlowtable(FlowtableSpec)
    /// NFT_MSG_NEWFLOWTABLE on an existing flowtable with only these devices.
    case addFlowtableDevices(flowtable: String, devices: [String])
    /// NFT_MSG_DELFLOWTABLE with a hook listing only these devices.
    case deleteFlowtableDevices(flowtable: String, devices: [String])
    case deleteFlowtable(String)
    case addSet(InterfaceSetSpec)
    case addSetElements(set: String, elements: [String])
    case deleteSetElements(set: String, elements: [String])
    case deleteSet(String)
    case addChain(ChainSpec)
    case deleteChain(String)
    case addRule(OffloadRule)
    case deleteRule(chain: String, handle: UInt64)
}

/// The changes for one table, applied as one atomic batch.
public struct NftBatch: Hashable, Sendable, Codable {
    public var table: TableRef
    public var changes: [NftChange]
    public init(table: TableRef, changes: [NftChange]) {
        self.table = table
        self.changes = changes
    }
    public var isEmpty: Bool { changes.isEmpty }
}
