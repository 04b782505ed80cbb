/// Kernel state + desired ruleset -> the smallest ordered batch. Devices and
/// set elements change incrementally; the flowtable is recreated only when
/// an attribute the kernel cannot update in place differs (priority,
/// hardware offload), which is the one case that drops offloaded flows.

public enum DiffError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A table with flowctl's name exists but is not marked as flowctl's.
    case foreignTable(TableRef)

    public var description: String {
        switch self {
        case .foreignTable(let ref):
            "table \(ref) exists but was not created by flowctl (no \"\(FlowctlNames.tableComment)\" comment); refusing to touch it"
        }
    }
}

public struct Differ: Sendable {
    public init() {}

    /// `reevaluate`: recreate an existing flowtable even when nothing about it
    /// changed. The kernel tears down every flow of a deleted flowtable, so
    /// each offloaded flow's next packet meets the current rules and bridge
    /// state once (its conntrack entry stays); flows still allowed are
    /// offloaded again at once (see README, Coherence).
    public func diff(kernel: KernelTable?, desired: DesiredRuleset?, table: TableRef = FlowctlNames.table,
                     reevaluate: Bool = false)
        throws(DiffError) -> NftBatch
    {
        if let kernel, kernel.comment != FlowctlNames.tableComment {
            throw .foreignTable(kernel.ref)
        }
        guard let desired else {
            return NftBatch(table: table, changes: kernel == nil ? [] : [.deleteTable(table)])
        }
        guard let kernel else {
            return NftBatch(table: desired.table.ref, changes: [
                .addTable(desired.table),
                .addSet(desired.interfaceSet),
                .addFlowtable(desired.flowtable),
                .addChain(desired.chain),
            ] + desired.rules.map(NftChange.addRule))
        }
        if kernel.flags != desired.table.flags {
            // Flags decide the table's lifetime; change them by recreating the table.
            return NftBatch(table: desired.table.ref, changes: [
                .deleteTable(kernel.ref),
                .addTable(desired.table),
                .addSet(desired.interfaceSet),
                .addFlowtable(desired.flowtable),
                .addChain(desired.chain),
            ] + desired.rules.map(NftChange.addRule))
        }

        var removals: [NftChange] = []   // rules first, then what they referenced
        var additions: [NftChange] = []

        let flowtable = kernel.flowtables.first { $0.name == desired.flowtable.name }
        let recreateFlowtable = flowtable.map {
            reevaluate || $0.priority != desired.flowtable.priority || $0.hardwareOffload != desired.flowtable.hardwareOffload
                || $0.counter != desired.flowtable.counter
        } ?? false
        let set = kernel.sets.first { $0.name == desired.interfaceSet.name }
        let recreateSet = set.map {
            $0.keyType != KernelSet.ifnameType || $0.keyLength != KernelSet.ifnameLength
        } ?? false
        let chain = kernel.chains.first { $0.name == desired.chain.name }
        let recreateChain = chain.map {
            $0.hook != desired.chain.hook || $0.priority != desired.chain.priority || $0.type != "filter"
                || !$0.policyAccept
        } ?? false

        // Rules: kept when exactly the desired rules in the desired order, each
        // with flowctl's content: a rule replaced under flowctl's comment is
        // not flowctl's rule (ChangeLog.repairs names it).
        let kernelRules = kernel.rules.filter { $0.chain == desired.chain.name }
        let rulesMatch = kernelRules.count == desired.rules.count
            && zip(kernelRules, desired.rules).allSatisfy { $0.matches($1) }
        let rebuildRules = !rulesMatch || recreateFlowtable || recreateSet || recreateChain
        if rebuildRules && !recreateChain {
            removals += kernelRules.map { .deleteRule(chain: $0.chain, handle: $0.handle) }
        }

        // Objects in our table that we do not want (ours alone, so they go).
        for rule in kernel.rules where rule.chain != desired.chain.name {
            removals.append(.deleteRule(chain: rule.chain, handle: rule.handle))
        }
        for other in kernel.chains where other.name != desired.chain.name {
            removals.append(.deleteChain(other.name))
        }
        if recreateChain { removals.append(.deleteChain(desired.chain.name)) }
        for other in kernel.flowtables where other.name != desired.flowtable.name {
            removals.append(.deleteFlowtable(other.name))
        }
        for other in kernel.sets where other.name != desired.interfaceSet.name {
            removals.append(.deleteSet(other.name))
        }

        // Set: elements incrementally.
        if let set, !recreateSet {
            let (added, removed) = delta(from: set.elements, to: desired.interfaceSet.elements)
            if !removed.isEmpty { removals.append(.deleteSetElements(set: set.name, elements: removed)) }
            if !added.isEmpty { additions.append(.addSetElements(set: set.name, elements: added)) }
        } else {
            if recreateSet { removals.append(.deleteSet(desired.interfaceSet.name)) }
            additions.append(.addSet(desired.interfaceSet))
        }

        // Flowtable: devices incrementally. Removing before adding keeps a
        // device that moves between our objects from ever being in two.
        if let flowtable, !recreateFlowtable {
            let (added, removed) = delta(from: flowtable.devices, to: desired.flowtable.devices)
            if !removed.isEmpty {
                removals.append(.deleteFlowtableDevices(flowtable: flowtable.name, devices: removed))
            }
            if !added.isEmpty {
                additions.append(.addFlowtableDevices(flowtable: flowtable.name, devices: added))
            }
        } else {
            if recreateFlowtable { removals.append(.deleteFlowtable(desired.flowtable.name)) }
            additions.append(.addFlowtable(desired.flowtable))
        }

        if chain == nil || recreateChain { additions.append(.addChain(desired.chain)) }
        if rebuildRules { additions += desired.rules.map(NftChange.addRule) }

        return NftBatch(table: desired.table.ref, changes: removals + additions)
    }

    /// Names to add and to remove, both sorted: one merge of the two lists
    /// sorted (they come sorted, so sorting them is a pass), no hashing of
    /// the thousand names a daemon diffs on every event.
    func delta(from current: [String], to wanted: [String]) -> (added: [String], removed: [String]) {
        let have = current.sortedUnique(), want = wanted.sortedUnique()
        var added: [String] = [], removed: [String] = []
        var i = have.startIndex, j = want.startIndex
        while i < have.endIndex || j < want.endIndex {
            if j == want.endIndex || (i < have.endIndex && have[i] < want[j]) {
                removed.append(have[i])
                i += 1
            } else if i == have.endIndex || want[j] < have[i] {
                added.append(want[j])
                j += 1
            } else {
                i += 1
                j += 1
            }
        }
        return (added, removed)
    }
}

extension Array where Element == String {
    /// Sorted, each once.
    public func sortedUnique() -> [String] {
        var sorted = self.sorted()
        var last: String?
        sorted.removeAll { name in
            defer { last = name }
            return name == last
        }
        return sorted
    }
}
