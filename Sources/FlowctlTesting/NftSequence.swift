import FlowctlCore
import Foundation

/// A sequence of nftables batches and device changes, run the same way
/// against the lab kernel (`flowctl-kit nft-sequence`) and against
/// FakeRulesetBackend, so the fake is checked to answer as the kernel does:
/// the same errno for every step and the same table after it.
public enum NftSequenceStep: Codable, Hashable, Sendable {
    /// A batch against the current generation, or a stale one (ERESTART).
    case batch(NftBatch, staleGeneration: Bool = false)
    /// A dummy device appears or goes away (as `ip link add/del`).
    case linkAdd(String)
    case linkDelete(String)
}

/// What one step gave: errno (0 when accepted) and the table afterwards,
/// reduced to what both sides name the same way (no handles, no counters).
public struct NftSequenceResult: Codable, Hashable, Sendable, CustomStringConvertible {
    public var errno: Int32
    public var flowtables: [String: [String]]
    public var sets: [String: [String]]
    public var chains: [String]
    public var rules: [String]
    public var tableExists: Bool

    public init(errno: Int32, table: KernelTable?) {
        self.errno = errno
        tableExists = table != nil
        flowtables = Dictionary(uniqueKeysWithValues: (table?.flowtables ?? []).map { ($0.name, $0.devices.sorted()) })
        sets = Dictionary(uniqueKeysWithValues: (table?.sets ?? []).map { ($0.name, $0.elements.sorted()) })
        chains = (table?.chains ?? []).map(\.name).sorted()
        rules = (table?.rules ?? []).map { "\($0.chain): \($0.comment ?? "-")" }
    }

    public var description: String {
        "errno \(errno), table \(tableExists ? "present" : "absent"), flowtables \(flowtables), sets \(sets), chains \(chains), rules \(rules)"
    }
}

public enum NftSequence {
    /// Runs `steps` against `backend`; `devices` carries out the link steps.
    public static func run(_ steps: [NftSequenceStep], table: TableRef, backend: any RulesetBackend,
                           devices: (NftSequenceStep) throws -> Void) throws -> [NftSequenceResult] {
        try steps.map { step in
            var code: Int32 = 0
            switch step {
            case .batch(let batch, let stale):
                do {
                    let generation = try backend.generation()
                    try backend.apply(batch, generation: stale ? generation &- 1 : generation)
                } catch let error as BatchError {
                    code = error.error.errno
                }
            case .linkAdd, .linkDelete:
                try devices(step)
            }
            return NftSequenceResult(errno: code, table: try backend.table(table))
        }
    }

    /// Steps whose answers flowctl depends on: devices deleted under a
    /// flowtable, deleting what is not there, adding what is, EBUSY, a stale
    /// generation, and atomicity.
    public static func kernelSemantics(table ref: TableRef = TableRef(family: .inet, name: "flowctl_seq")) -> [NftSequenceStep] {
        let set = InterfaceSetSpec(name: "ifaces", elements: ["br0"])
        let flowtable = FlowtableSpec(name: "ft", priority: 0, devices: ["sq1", "sq2"], counter: true)
        let chain = ChainSpec(name: "forward", hook: .forward, priority: FlowctlNames.forwardPriority)
        let rule = OffloadRule(chain: "forward", direction: .input, l4proto: .tcp, interfaceSet: "ifaces", flowtable: "ft")
        func batch(_ changes: [NftChange], stale: Bool = false) -> NftSequenceStep {
            .batch(NftBatch(table: ref, changes: changes), staleGeneration: stale)
        }
        return [
            .linkAdd("sq1"), .linkAdd("sq2"), .linkAdd("sq3"),
            batch([.addTable(TableSpec(ref: ref, comment: "flowctl sequence")), .addSet(set), .addFlowtable(flowtable),
                   .addChain(chain), .addRule(rule)]),
            // A device deleted under the flowtable leaves it (6.12 unhooks it) ...
            .linkDelete("sq1"),
            // ... so deleting it from the flowtable is ENOENT,
            batch([.deleteFlowtableDevices(flowtable: "ft", devices: ["sq1"])]),
            // and one of that name created again is not in it.
            .linkAdd("sq1"),
            batch([.addFlowtableDevices(flowtable: "ft", devices: ["sq1"])]),
            // A device that does not exist: ENOENT.
            batch([.addFlowtableDevices(flowtable: "ft", devices: ["sq9"])]),
            // Atomic: the first change does not stay when the second is refused.
            batch([.addFlowtableDevices(flowtable: "ft", devices: ["sq3"]),
                   .deleteFlowtableDevices(flowtable: "ft", devices: ["sq9"])]),
            // A device already in the flowtable, an element already in the set.
            batch([.addFlowtableDevices(flowtable: "ft", devices: ["sq2"])]),
            batch([.addSetElements(set: "ifaces", elements: ["br0"])]),
            // An element that is not there.
            batch([.deleteSetElements(set: "ifaces", elements: ["nope"])]),
            // A flowtable the rules use.
            batch([.deleteFlowtable("ft")]),
            // A stale generation.
            batch([.addSetElements(set: "ifaces", elements: ["br1"])], stale: true),
            // Every device of the flowtable deleted: it stays, empty.
            .linkDelete("sq1"), .linkDelete("sq2"),
            batch([.addFlowtableDevices(flowtable: "ft", devices: ["sq3"])]),
            batch([.deleteTable(ref)]),
            batch([.deleteTable(ref)]),
            .linkDelete("sq3"),
        ]
    }
}
