/// One line per change, with its reason, for logs and `enable` output:
/// "vnet7 added to flowtable: port of br0".
public enum ChangeLog {
    /// `kernel`: the table the batch was made against (ReconcileOutcome.kernelBefore);
    /// with it, a rule deleted because its content was not flowctl's is named
    /// as a repair (see `repairs`).
    public static func lines(for batch: NftBatch, plan: Plan, previous: Plan?, kernel: KernelTable? = nil)
        -> [String]
    {
        let repaired = repairedRules(in: batch, desired: plan.desired, kernel: kernel)
        func reasons(_ device: String, in plan: Plan?) -> String? {
            guard let found = plan?.devices.first(where: { $0.name == device }) else { return nil }
            return found.reasons.map(\.description).joined(separator: "; ")
        }
        func interfaceReason(_ name: String, in plan: Plan?) -> String? {
            guard let bridge = plan?.bridges.first(where: { $0.interfaces.contains(name) }) else { return nil }
            return name == bridge.name ? "enabled bridge" : "VLAN upper of \(bridge.name)"
        }
        var lines: [String] = []
        for change in batch.changes {
            switch change {
            case .addTable:
                lines.append("table \(batch.table) created")
            case .deleteTable:
                lines.append("table \(batch.table) deleted: no bridge is enabled")
            case .addFlowtable(let spec):
                lines.append("flowtable \(spec.name) created (\(spec.hardwareOffload ? "hardware" : "software") offload\(spec.counter ? ", counters" : ""))")
                for device in spec.devices {
                    lines.append("\(device) added to flowtable: \(reasons(device, in: plan) ?? "planned")")
                }
            case .addFlowtableDevices(_, let devices):
                for device in devices {
                    lines.append("\(device) added to flowtable: \(reasons(device, in: plan) ?? "planned")")
                }
            case .deleteFlowtableDevices(_, let devices):
                for device in devices {
                    let was = reasons(device, in: previous).map { "was \($0)" } ?? "no longer needed"
                    lines.append("\(device) removed from flowtable: \(was)")
                }
            case .deleteFlowtable(let name):
                lines.append("flowtable \(name) deleted to be recreated")
            case .addSet(let set):
                for name in set.elements {
                    lines.append("\(name) added to offload interfaces: \(interfaceReason(name, in: plan) ?? "planned")")
                }
            case .addSetElements(_, let names):
                for name in names {
                    lines.append("\(name) added to offload interfaces: \(interfaceReason(name, in: plan) ?? "planned")")
                }
            case .deleteSetElements(_, let names):
                for name in names {
                    let was = interfaceReason(name, in: previous).map { "was \($0)" } ?? "no longer needed"
                    lines.append("\(name) removed from offload interfaces: \(was)")
                }
            case .deleteSet(let name):
                lines.append("set \(name) deleted to be recreated")
            case .addChain(let chain):
                lines.append("chain \(chain.name) created (hook \(chain.hook.rawValue), priority \(chain.priority))")
            case .deleteChain(let name):
                lines.append("chain \(name) deleted to be recreated")
            case .addRule(let rule):
                lines.append("rule added: \(NftText.ruleBody(rule))")
            case .deleteRule(let chain, let handle):
                lines.append(repaired[handle] ?? "rule \(handle) of chain \(chain) deleted")
            }
        }
        return lines
    }

    /// One line for each rule the batch deletes because it carries one of
    /// flowctl's rule ids with other content (`nft replace rule ... comment
    /// "flowctl/v2 iifname tcp"`), saying what the kernel had; flowctl's rule
    /// is added back by the same batch.
    public static func repairs(in batch: NftBatch, desired: DesiredRuleset?, kernel: KernelTable?) -> [String] {
        let repaired = repairedRules(in: batch, desired: desired, kernel: kernel)
        return batch.changes.compactMap {
            if case .deleteRule(_, let handle) = $0 { repaired[handle] } else { nil }
        }
    }

    private static func repairedRules(in batch: NftBatch, desired: DesiredRuleset?, kernel: KernelTable?)
        -> [UInt64: String]
    {
        guard let desired, let kernel else { return [:] }
        var lines: [UInt64: String] = [:]
        for change in batch.changes {
            guard case .deleteRule(let chain, let handle) = change,
                  let rule = kernel.rules.first(where: { $0.chain == chain && $0.handle == handle }),
                  let comment = rule.comment,
                  let wanted = desired.rules.first(where: { $0.id == comment && $0.chain == chain }),
                  rule.expressions != wanted.expressions
            else { continue }
            let had = rule.expressions.map { $0.map { "[ \($0) ]" }.joined(separator: " ") } ?? "content not read"
            lines[handle] = "rule \"\(comment)\" (handle \(handle)) repaired: its content was not flowctl's; the kernel had \(had)"
        }
        return lines
    }
}
