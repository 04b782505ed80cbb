import FlowctlCore
import Foundation

/// A topology source whose snapshot tests set directly.
/// @unchecked Sendable: every stored value is read and written under `lock`.
public final class FakeTopologySource: TopologySource, @unchecked Sendable {
    private let lock = NSLock()
    private var _topology: Topology
    public init(_ topology: Topology) { _topology = topology }
    public var topology: Topology {
        get { lock.withLock { _topology } }
        set { lock.withLock { _topology = newValue } }
    }
    /// How often each read was asked for (a daemon must not dump on every event).
    public private(set) var snapshots = 0
    public private(set) var routeReads = 0
    public func snapshot() throws -> Topology {
        lock.withLock {
            snapshots += 1
            return _topology
        }
    }
    public func routes() throws -> [Route] {
        lock.withLock {
            routeReads += 1
            return _topology.routes
        }
    }
    public func interfaceIndex(of name: String) -> Int32? { topology.link(named: name)?.index }
}

/// An in-memory nf_tables with the kernel's semantics for the objects
/// flowctl uses: atomic batches, the generation check, incremental flowtable
/// devices, EEXIST/ENOENT/EBUSY where the kernel would say so. Records every
/// batch it was sent.
/// @unchecked Sendable: the kernel calls mutate it under `lock`; tests set
/// its options and read what it recorded only while no call is running.
public final class FakeRulesetBackend: RulesetBackend, @unchecked Sendable {
    private let lock = NSLock()
    public private(set) var tables: [TableRef: KernelTable] = [:]
    public private(set) var generationID: UInt32 = 1
    public private(set) var appliedBatches: [NftBatch] = []
    public var otherForwardChains: [ForwardChainInfo] = []
    /// false models a kernel without CONFIG_NF_FLOW_TABLE (creating a flowtable: ENOENT).
    public var supportsFlowtables = true
    /// Devices that exist (a flowtable refuses others with ENOENT, like 6.12); nil = any.
    public var existingDevices: Set<String>?
    /// Devices that offer hw-tc-offload but cannot take flowtable flows:
    /// creating a flowtable with `flags offload` that lists one, or adding
    /// one to such a flowtable, fails with EOPNOTSUPP (netdevsim and veth
    /// in the lab kernel). A hardware flowtable without them is accepted.
    public var devicesRefusingHardwareOffload: Set<String> = []
    /// Called before each apply; lets a test change the ruleset "concurrently".
    public var beforeApply: ((FakeRulesetBackend) -> Void)?
    private var nextHandle: UInt64 = 1

    public init() {}

    public func generation() throws -> UInt32 { lock.withLock { generationID } }

    public func table(_ ref: TableRef) throws -> KernelTable? { lock.withLock { tables[ref] } }

    public func forwardChains() throws -> [ForwardChainInfo] {
        lock.withLock {
            otherForwardChains + tables.values.flatMap { table in
                table.chains.compactMap { chain in
                    chain.hook == .forward ? ForwardChainInfo(table: table.ref, chain: chain.name,
                                                               priority: chain.priority ?? 0) : nil
                }
            }
        }
    }

    /// Puts a table in place as if another program created it.
    public func install(_ table: KernelTable) {
        lock.withLock {
            tables[table.ref] = table
            generationID += 1
        }
    }

    /// What `nft replace rule TABLE CHAIN handle H ... comment "ID"` does to
    /// the rule with comment `comment`: other expressions, same handle and
    /// comment, a new generation. False when no rule has that comment.
    @discardableResult
    public func replaceRule(comment: String, expressions: [String], in ref: TableRef = FlowctlNames.table) -> Bool {
        lock.withLock {
            guard let index = tables[ref]?.rules.firstIndex(where: { $0.comment == comment }) else { return false }
            tables[ref]!.rules[index].expressions = expressions
            generationID += 1
            return true
        }
    }

    public func removeTable(_ ref: TableRef) {
        lock.withLock {
            tables[ref] = nil
            generationID += 1
        }
    }

    public func apply(_ batch: NftBatch, generation: UInt32?) throws {
        beforeApply?(self)
        try lock.withLock {
            if let generation, generation != generationID {
                throw BatchError(change: nil, command: nil, error: KernelError(
                    operation: "batch", errno: KernelError.ERESTART, reason: "Interrupted system call should be restarted"))
            }
            var working = tables
            var handle = nextHandle
            for (change, command) in zip(batch.changes, NftText.commands(batch)) {
                do {
                    try Self.apply(change, table: batch.table, to: &working, handle: &handle,
                                   supportsFlowtables: supportsFlowtables, devices: existingDevices,
                                   refusingHardware: devicesRefusingHardwareOffload)
                } catch let errno as FakeErrno {
                    throw BatchError(change: change, command: command, error: KernelError(
                        operation: command, errno: errno.code, reason: errno.reason))
                }
            }
            tables = working
            nextHandle = handle
            generationID += 1
            appliedBatches.append(batch)
        }
    }

    public func validate(_ batch: NftBatch) throws {
        var working = lock.withLock { tables }
        var handle: UInt64 = 1 << 32
        for (change, command) in zip(batch.changes, NftText.commands(batch)) {
            do {
                try Self.apply(change, table: batch.table, to: &working, handle: &handle,
                               supportsFlowtables: supportsFlowtables, devices: existingDevices,
                               refusingHardware: devicesRefusingHardwareOffload)
            } catch let errno as FakeErrno {
                throw BatchError(change: change, command: command, error: KernelError(
                    operation: command, errno: errno.code, reason: errno.reason))
            }
        }
    }

    struct FakeErrno: Error {
        var code: Int32
        var reason: String
        static let noent = FakeErrno(code: KernelError.ENOENT, reason: "No such file or directory")
        static let exist = FakeErrno(code: KernelError.EEXIST, reason: "File exists")
        static let busy = FakeErrno(code: KernelError.EBUSY, reason: "Device or resource busy")
        static let notSupported = FakeErrno(code: KernelError.EOPNOTSUPP, reason: "Operation not supported")
    }

    private static func apply(_ change: NftChange, table ref: TableRef, to tables: inout [TableRef: KernelTable],
                              handle: inout UInt64, supportsFlowtables: Bool, devices: Set<String>?,
                              refusingHardware: Set<String>) throws {
        func withTable(_ body: (inout KernelTable) throws -> Void) throws {
            guard var table = tables[ref] else { throw FakeErrno.noent }
            try body(&table)
            tables[ref] = table
        }
        switch change {
        case .addTable(let spec):
            guard tables[spec.ref] == nil else { throw FakeErrno.exist }
            tables[spec.ref] = KernelTable(ref: spec.ref, flags: spec.flags, comment: spec.comment)
        case .deleteTable(let target):
            guard tables.removeValue(forKey: target) != nil else { throw FakeErrno.noent }
        case .addFlowtable(let spec):
            guard supportsFlowtables else { throw FakeErrno.noent }
            try withTable { table in
                guard !table.flowtables.contains(where: { $0.name == spec.name }) else { throw FakeErrno.exist }
                if let devices, !Set(spec.devices).isSubset(of: devices) { throw FakeErrno.noent }
                if spec.hardwareOffload, !refusingHardware.isDisjoint(with: spec.devices) { throw FakeErrno.notSupported }
                table.flowtables.append(KernelFlowtable(name: spec.name, priority: spec.priority, devices: spec.devices,
                                                        counter: spec.counter, hardwareOffload: spec.hardwareOffload))
            }
        case .addFlowtableDevices(let name, let added):
            try withTable { table in
                guard let index = table.flowtables.firstIndex(where: { $0.name == name }) else { throw FakeErrno.noent }
                if let devices, !Set(added).isSubset(of: devices) { throw FakeErrno.noent }
                if table.flowtables[index].hardwareOffload, !refusingHardware.isDisjoint(with: added) {
                    throw FakeErrno.notSupported
                }
                let merged = Set(table.flowtables[index].devices).union(added)
                table.flowtables[index].devices = merged.sorted()
            }
        case .deleteFlowtableDevices(let name, let removed):
            try withTable { table in
                guard let index = table.flowtables.firstIndex(where: { $0.name == name }) else { throw FakeErrno.noent }
                guard Set(removed).isSubset(of: table.flowtables[index].devices) else { throw FakeErrno.noent }
                table.flowtables[index].devices = Set(table.flowtables[index].devices).subtracting(removed).sorted()
            }
        case .deleteFlowtable(let name):
            try withTable { table in
                guard table.flowtables.contains(where: { $0.name == name }) else { throw FakeErrno.noent }
                if table.rules.contains(where: { _ in true }) && referencesAnyRule(table, flowtable: name) {
                    throw FakeErrno.busy
                }
                table.flowtables.removeAll { $0.name == name }
            }
        case .addSet(let spec):
            try withTable { table in
                guard !table.sets.contains(where: { $0.name == spec.name }) else { throw FakeErrno.exist }
                table.sets.append(KernelSet(name: spec.name, keyType: KernelSet.ifnameType,
                                            keyLength: KernelSet.ifnameLength, elements: spec.elements))
            }
        case .addSetElements(let name, let elements):
            try withTable { table in
                guard let index = table.sets.firstIndex(where: { $0.name == name }) else { throw FakeErrno.noent }
                table.sets[index].elements = Set(table.sets[index].elements).union(elements).sorted()
            }
        case .deleteSetElements(let name, let elements):
            try withTable { table in
                guard let index = table.sets.firstIndex(where: { $0.name == name }) else { throw FakeErrno.noent }
                guard Set(elements).isSubset(of: table.sets[index].elements) else { throw FakeErrno.noent }
                table.sets[index].elements = Set(table.sets[index].elements).subtracting(elements).sorted()
            }
        case .deleteSet(let name):
            try withTable { table in
                guard table.sets.contains(where: { $0.name == name }) else { throw FakeErrno.noent }
                table.sets.removeAll { $0.name == name }
            }
        case .addChain(let spec):
            try withTable { table in
                guard !table.chains.contains(where: { $0.name == spec.name }) else { throw FakeErrno.exist }
                table.chains.append(KernelChain(name: spec.name, type: "filter", hook: spec.hook,
                                                priority: spec.priority))
            }
        case .deleteChain(let name):
            try withTable { table in
                guard table.chains.contains(where: { $0.name == name }) else { throw FakeErrno.noent }
                table.chains.removeAll { $0.name == name }
                table.rules.removeAll { $0.chain == name }
            }
        case .addRule(let rule):
            try withTable { table in
                guard table.chains.contains(where: { $0.name == rule.chain }),
                      table.sets.contains(where: { $0.name == rule.interfaceSet }),
                      table.flowtables.contains(where: { $0.name == rule.flowtable })
                else { throw FakeErrno.noent }
                table.rules.append(KernelRule(chain: rule.chain, handle: handle, comment: rule.id,
                                              expressions: rule.expressions, packets: 0, bytes: 0))
                handle += 1
            }
        case .deleteRule(let chain, let ruleHandle):
            try withTable { table in
                guard table.rules.contains(where: { $0.chain == chain && $0.handle == ruleHandle }) else {
                    throw FakeErrno.noent
                }
                table.rules.removeAll { $0.handle == ruleHandle }
            }
        }
    }

    /// A device appears (as `ip link add`): a flowtable may now name it.
    public func deviceAdded(_ name: String) {
        lock.withLock { existingDevices = (existingDevices ?? []).union([name]) }
    }

    /// A device goes away (as `ip link del`). Like Linux 6.12, every
    /// flowtable drops it at once (NETDEV_UNREGISTER unhooks it, with no
    /// nftables notification and no new generation); deleting it from a
    /// flowtable afterwards is ENOENT. Checked against the lab kernel by
    /// FakeKernelAgreementTests.
    public func deviceRemoved(_ name: String) {
        lock.withLock {
            existingDevices?.remove(name)
            for ref in tables.keys {
                for index in tables[ref]!.flowtables.indices {
                    tables[ref]!.flowtables[index].devices.removeAll { $0 == name }
                }
            }
        }
    }

    /// The fake's rules do not record their flowtable; flowctl's rules all
    /// reference its only flowtable, which is what matters for EBUSY.
    private static func referencesAnyRule(_ table: KernelTable, flowtable: String) -> Bool {
        !table.rules.isEmpty
    }
}

/// Conntrack figures set by the test.
public struct FakeConntrack: ConntrackSource {
    public var value: ConntrackSummary
    public init(_ value: ConntrackSummary) { self.value = value }
    public func summary() throws -> ConntrackSummary { value }
}
