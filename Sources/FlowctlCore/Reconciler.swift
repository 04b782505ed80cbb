/// One reconcile pass: read both sides, plan, diff, send one batch. Used by
/// every command (enable, disable, status, plan) and later by the daemon.

public struct ReconcileOutcome: Sendable, Codable {
    public var plan: Plan
    /// The batch that was sent (or, for a dry run, would be). Empty when the
    /// kernel already matched.
    public var batch: NftBatch
    public var applied: Bool
    /// The table as the kernel had it before this pass.
    public var kernelBefore: KernelTable?
    /// Forward chains of other tables that run at or after flowctl's.
    public var laterForwardChains: [ForwardChainInfo]
    public var attempts: Int
    /// The ruleset generation the pass worked against.
    public var generation: UInt32 = 0
    /// What the table looks like after the batch, when that follows from the
    /// batch alone (device and element changes); nil otherwise.
    public var predictedTable: KernelTable?
    /// The kernel's refusal of hardware offload that this plan respects, for
    /// the caller to pass to its next pass (nil: none known, or hardware is
    /// in use).
    public var hardwareRefusal: HardwareRefusal?
    /// This pass asked for hardware offload, the kernel refused it, and the
    /// batch sent (or, for a dry run, checked) is the software one.
    public var fellBackToSoftware = false

    /// Warnings for the operator: the planner's and the chain-order check's.
    public var warnings: [String] {
        plan.warnings + laterForwardChains.map {
            "forward chain \($0.chain) of table \($0.table) runs at priority \($0.priority), not before flowctl's (\(FlowctlNames.forwardPriority)): flows it would drop after their first packets may be offloaded first"
        }
    }
}

/// The kernel side of a reconcile, as known without asking.
public struct KernelSnapshot: Sendable, Hashable {
    public var generation: UInt32
    public var table: KernelTable?
    /// nil: not known, read them.
    public var laterForwardChains: [ForwardChainInfo]?

    public init(generation: UInt32, table: KernelTable?, laterForwardChains: [ForwardChainInfo]?) {
        self.generation = generation
        self.table = table
        self.laterForwardChains = laterForwardChains
    }
}

extension KernelTable {
    /// The table after `batch`, when the batch only moves devices and set
    /// elements (the daemon's everyday batches); nil for anything else.
    public func applying(_ batch: NftBatch) -> KernelTable? {
        var table = self
        for change in batch.changes {
            switch change {
            case .addFlowtableDevices(let name, let devices):
                guard let i = table.flowtables.firstIndex(where: { $0.name == name }) else { return nil }
                table.flowtables[i].devices = (table.flowtables[i].devices + devices).sortedUnique()
            case .deleteFlowtableDevices(let name, let devices):
                guard let i = table.flowtables.firstIndex(where: { $0.name == name }) else { return nil }
                table.flowtables[i].devices = table.flowtables[i].devices.filter { !devices.contains($0) }
            case .addSetElements(let name, let elements):
                guard let i = table.sets.firstIndex(where: { $0.name == name }) else { return nil }
                table.sets[i].elements = (table.sets[i].elements + elements).sortedUnique()
            case .deleteSetElements(let name, let elements):
                guard let i = table.sets.firstIndex(where: { $0.name == name }) else { return nil }
                table.sets[i].elements = table.sets[i].elements.filter { !elements.contains($0) }
            default:
                return nil
            }
        }
        return table
    }
}

public enum ReconcileError: Error, CustomStringConvertible {
    case plan(PlanError)
    case diff(DiffError)
    /// The kernel kept changing under us (generation mismatch or a device
    /// vanished) through every attempt.
    case unstable(attempts: Int, last: BatchError)
    case flowtablesUnsupported(BatchError)
    /// `--hw-offload on`, and the kernel refused `flags offload` for these devices.
    case hardwareOffloadRefused(devices: [String], BatchError)

    public var description: String {
        switch self {
        case .plan(let error): "\(error)"
        case .diff(let error): "\(error)"
        case .unstable(let attempts, let last):
            "the host kept changing during \(attempts) attempts; last: \(last)"
        case .flowtablesUnsupported:
            "this kernel has no nftables flowtable support (needs CONFIG_NF_FLOW_TABLE and CONFIG_NF_FLOW_TABLE_INET, Linux 4.16+; `flowctl doctor` lists what is missing); nothing was changed"
        case .hardwareOffloadRefused(let devices, let error):
            "--hw-offload on: the kernel refused hardware offload on \(devices.joined(separator: ", ")): \(error.error.reason); nothing was changed (--hw-offload auto falls back to software)"
        }
    }
}

public struct Reconciler: Sendable {
    public let topology: any TopologySource
    public let backend: any RulesetBackend
    public let planner = Planner()
    public let differ = Differ()
    public var maxAttempts = 3

    public init(topology: any TopologySource, backend: any RulesetBackend) {
        self.topology = topology
        self.backend = backend
    }

    /// Brings the kernel to `intent`. `required` names bridges that must be
    /// usable (see Planner). With `dryRun`, computes the batch and sends nothing.
    /// `known`: the kernel's state as the caller knows it for sure (the
    /// daemon, from notifications); the first attempt then reads nothing,
    /// and the generation check still guards the batch.
    /// With `reevaluate`, the flowtable is recreated (Differ.diff) so every
    /// offloaded flow meets the current policy again.
    /// Hardware offload the kernel refuses (EOPNOTSUPP: a NIC that offers
    /// hw-tc-offload but cannot take flowtable flows) falls back to software
    /// in the same call unless a bridge asks for `--hw-offload on`; the
    /// outcome's `hardwareRefusal` says so, and passed back in as
    /// `hardwareRefusal` it keeps later passes from asking again for the
    /// same devices. A dry run checks a hardware batch with the kernel
    /// (never committed) to show the same fallback.
    public func reconcile(intent: Intent, required: Set<String> = [], dryRun: Bool = false,
                          known: KernelSnapshot? = nil, reevaluate: Bool = false,
                          hardwareRefusal: HardwareRefusal? = nil) throws -> ReconcileOutcome
    {
        var refusal = hardwareRefusal
        var fellBack = false
        var attempt = 0
        while true {
            attempt += 1
            let cached = attempt == 1 ? known : nil
            let generation = try cached?.generation ?? backend.generation()
            let snapshot = try topology.snapshot()
            let plan: Plan
            do {
                plan = try planner.plan(intent: intent, topology: snapshot, required: required, hardwareRefusal: refusal)
            } catch {
                throw ReconcileError.plan(error)
            }
            let kernel = try cached.map(\.table) ?? backend.table(FlowctlNames.table)
            let batch: NftBatch
            do { batch = try differ.diff(kernel: kernel, desired: plan.desired, reevaluate: reevaluate) } catch {
                throw ReconcileError.diff(error)
            }
            let later = plan.desired == nil ? [] : try cached?.laterForwardChains ?? backend.forwardChains().filter {
                $0.table != FlowctlNames.table && $0.priority >= FlowctlNames.forwardPriority
            }
            var outcome = ReconcileOutcome(plan: plan, batch: batch, applied: false, kernelBefore: kernel,
                                           laterForwardChains: later, attempts: attempt)
            outcome.generation = generation
            outcome.hardwareRefusal = plan.offload?.hardware == true ? nil : refusal
            outcome.fellBackToSoftware = fellBack
            if batch.isEmpty {
                outcome.predictedTable = kernel
                return outcome
            }
            do {
                if dryRun {
                    // Whether a NIC takes flowtable flows shows only when the
                    // kernel tries: check (never commit) a hardware batch.
                    if plan.offload?.hardware == true { try backend.validate(batch) }
                    outcome.predictedTable = kernel
                    return outcome
                }
                try backend.apply(batch, generation: generation)
                outcome.applied = true
                outcome.predictedTable = kernel?.applying(batch)
                return outcome
            } catch let error as BatchError {
                if let refused = refusedHardwareDevices(error, plan: plan) {
                    if intent.bridges.values.contains(where: { $0.hwOffload == .on }) {
                        throw ReconcileError.hardwareOffloadRefused(devices: refused, error)
                    }
                    // The batch was atomic: nothing of it stayed. Plan software
                    // for these devices and try again from fresh reads.
                    if attempt >= maxAttempts { throw ReconcileError.unstable(attempts: attempt, last: error) }
                    refusal = HardwareRefusal(devices: plan.desired?.flowtable.devices ?? [], refused: refused,
                                              why: error.error.reason)
                    fellBack = true
                    continue
                }
                if dryRun {
                    // Anything else the check finds, the real batch meets (and
                    // retries or reports) when it is sent; show the plan as is.
                    outcome.predictedTable = kernel
                    return outcome
                }
                if isFlowtableSupportMissing(error) { throw ReconcileError.flowtablesUnsupported(error) }
                // The ruleset moved (ERESTART) or a device went away between
                // the dump and the batch (ENOENT): read both sides again.
                let retriable = error.error.errno == KernelError.ERESTART || error.error.errno == KernelError.ENOENT
                guard retriable else { throw error }
                if attempt >= maxAttempts { throw ReconcileError.unstable(attempts: attempt, last: error) }
            }
        }
    }

    /// The devices whose hardware offload the kernel refused, when `error`
    /// is that refusal: EOPNOTSUPP creating the planned hardware flowtable,
    /// or adding devices to it (the drivers' answer to TC_SETUP_FT, and the
    /// flow block core's when a device has no offload at all; seen from
    /// netdevsim and veth in the lab kernel).
    func refusedHardwareDevices(_ error: BatchError, plan: Plan) -> [String]? {
        guard error.error.errno == KernelError.EOPNOTSUPP, let flowtable = plan.desired?.flowtable,
              flowtable.hardwareOffload else { return nil }
        switch error.change {
        case .addFlowtable(let spec)? where spec.name == flowtable.name && spec.hardwareOffload:
            return spec.devices
        case .addFlowtableDevices(let name, let devices)? where name == flowtable.name:
            return devices
        default:
            return nil
        }
    }

    /// ENOENT on creating the flowtable means a missing device or a kernel
    /// without flowtables; a dry run of a device-less flowtable tells which.
    func isFlowtableSupportMissing(_ error: BatchError) -> Bool {
        guard error.error.errno == KernelError.ENOENT, case .addFlowtable? = error.change else { return false }
        return !FeatureProbe.flowtable.passes(on: backend)
    }
}

/// A throwaway object a dry-run batch tries to create; nothing is committed.
public struct FeatureProbe: Sendable {
    public var name: String
    /// Kernel options that provide the feature.
    public var kernelOptions: [String]
    public var batch: NftBatch

    public static let probeTable = TableRef(family: .inet, name: "flowctl_probe")

    static func table(flags: TableFlags = [], comment: String = "flowctl probe") -> NftChange {
        .addTable(TableSpec(ref: probeTable, flags: flags, comment: comment))
    }

    static let probeFlowtable = FlowtableSpec(name: "ft", priority: 0, devices: [], counter: false)

    public static let nfTables = FeatureProbe(
        name: "nf_tables inet family", kernelOptions: ["CONFIG_NF_TABLES", "CONFIG_NF_TABLES_INET"],
        batch: NftBatch(table: probeTable, changes: [table(comment: "")]))
    public static let tableComment = FeatureProbe(
        name: "table comments (user data, Linux 5.13+)", kernelOptions: ["CONFIG_NF_TABLES"],
        batch: NftBatch(table: probeTable, changes: [table()]))
    public static let ownerFlag = FeatureProbe(
        name: "table flag owner (Linux 5.12+)", kernelOptions: ["CONFIG_NF_TABLES"],
        batch: NftBatch(table: probeTable, changes: [table(flags: .owner)]))
    public static let persistFlag = FeatureProbe(
        name: "table flag persist (Linux 6.9+)", kernelOptions: ["CONFIG_NF_TABLES"],
        batch: NftBatch(table: probeTable, changes: [table(flags: [.owner, .persist])]))
    public static let flowtable = FeatureProbe(
        name: "flowtables", kernelOptions: ["CONFIG_NF_FLOW_TABLE", "CONFIG_NF_FLOW_TABLE_INET"],
        batch: NftBatch(table: probeTable, changes: [table(), .addFlowtable(probeFlowtable)]))
    public static let flowtableCounter = FeatureProbe(
        name: "flowtable counters (Linux 5.7+)", kernelOptions: ["CONFIG_NF_FLOW_TABLE"],
        batch: NftBatch(table: probeTable, changes: [
            table(), .addFlowtable(FlowtableSpec(name: "ft", priority: 0, devices: [], counter: true)),
        ]))
    public static let flowOffload = FeatureProbe(
        name: "flow offload expression (flow add @ft)", kernelOptions: ["CONFIG_NFT_FLOW_OFFLOAD"],
        batch: NftBatch(table: probeTable, changes: [
            table(),
            .addSet(InterfaceSetSpec(name: "ifaces", elements: ["probe0"])),
            .addFlowtable(probeFlowtable),
            .addChain(ChainSpec(name: "forward", hook: .forward, priority: FlowctlNames.forwardPriority)),
            .addRule(OffloadRule(chain: "forward", direction: .input, l4proto: .tcp, interfaceSet: "ifaces",
                                 flowtable: "ft")),
        ]))

    public static let all: [FeatureProbe] = [
        .nfTables, .tableComment, .ownerFlag, .persistFlag, .flowtable, .flowtableCounter, .flowOffload,
    ]

    /// Runs the dry run; the error, if the kernel refused it.
    public func run(on backend: any RulesetBackend) -> (any Error)? {
        do {
            try backend.validate(batch)
            return nil
        } catch {
            return error
        }
    }

    public func passes(on backend: any RulesetBackend) -> Bool { run(on: backend) == nil }
}
