import FoundationEssentials

/// nft(8) syntax for what flowctl does: the whole table for `plan`, and each
/// batch step as the nft command that would do the same. Both are valid
/// `nft -f` input (checked in the lab tier).

public enum NftText {
    static func quoted(_ value: String) -> String {
        "\"" + value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }

    static func list(_ values: [String]) -> String {
        "{ " + values.map(quoted).joined(separator: ", ") + " }"
    }

    static func flowtableBody(priority: Int32, devices: [String], counter: Bool, hardware: Bool) -> [String] {
        var lines = ["hook ingress priority \(priority);"]
        if !devices.isEmpty { lines.append("devices = \(list(devices));") }
        if counter { lines.append("counter;") }
        if hardware { lines.append("flags offload;") }
        return lines
    }

    static func chainHeader(_ chain: ChainSpec) -> String {
        "type filter hook \(chain.hook.rawValue) priority \(chain.priority); policy accept;"
    }

    /// The rule's statement list, as `nft list` prints it.
    public static func ruleBody(_ rule: OffloadRule) -> String {
        "\(rule.direction.rawValue) @\(rule.interfaceSet) ct direction original meta l4proto \(rule.l4proto.name) counter flow add @\(rule.flowtable) comment \(quoted(rule.id))"
    }

    /// The whole desired table, in `nft list table` layout.
    public static func render(_ ruleset: DesiredRuleset) -> String {
        let ref = ruleset.table.ref
        var out = "table \(ref.family.rawValue) \(ref.name) {\n"
        out += "\tcomment \(quoted(ruleset.table.comment))\n"
        if !ruleset.table.flags.isEmpty { out += "\tflags \(flagWords(ruleset.table.flags))\n" }
        out += "\n\tset \(ruleset.interfaceSet.name) {\n\t\ttype ifname\n"
        if !ruleset.interfaceSet.elements.isEmpty {
            out += "\t\telements = \(list(ruleset.interfaceSet.elements))\n"
        }
        out += "\t}\n\n\tflowtable \(ruleset.flowtable.name) {\n"
        let ft = ruleset.flowtable
        for line in flowtableBody(priority: ft.priority, devices: ft.devices, counter: ft.counter,
                                  hardware: ft.hardwareOffload) {
            out += "\t\t\(line.hasSuffix(";") ? String(line.dropLast()) : line)\n"
        }
        out += "\t}\n\n\tchain \(ruleset.chain.name) {\n\t\t\(chainHeader(ruleset.chain))\n"
        for rule in ruleset.rules { out += "\t\t\(ruleBody(rule))\n" }
        out += "\t}\n}\n"
        return out
    }

    static func flagWords(_ flags: TableFlags) -> String {
        var words: [String] = []
        if flags.contains(.dormant) { words.append("dormant") }
        if flags.contains(.owner) { words.append("owner") }
        if flags.contains(.persist) { words.append("persist") }
        return words.joined(separator: ",")
    }

    /// One nft command per batch step.
    public static func commands(_ batch: NftBatch) -> [String] {
        let t = "\(batch.table.family.rawValue) \(batch.table.name)"
        return batch.changes.map { change in
            switch change {
            case .addTable(let spec):
                var body = "comment \(quoted(spec.comment));"
                if !spec.flags.isEmpty { body = "flags \(flagWords(spec.flags)); " + body }
                return "add table \(spec.ref.family.rawValue) \(spec.ref.name) { \(body) }"
            case .deleteTable(let ref):
                return "delete table \(ref.family.rawValue) \(ref.name)"
            case .addFlowtable(let ft):
                let body = flowtableBody(priority: ft.priority, devices: ft.devices, counter: ft.counter,
                                         hardware: ft.hardwareOffload)
                return "add flowtable \(t) \(ft.name) { \(body.joined(separator: " ")) }"
            case .addFlowtableDevices(let name, let devices):
                return "add flowtable \(t) \(name) { hook ingress priority \(FlowctlNames.flowtablePriority); devices = \(list(devices)); }"
            case .deleteFlowtableDevices(let name, let devices):
                return "delete flowtable \(t) \(name) { hook ingress priority \(FlowctlNames.flowtablePriority); devices = \(list(devices)); }"
            case .deleteFlowtable(let name):
                return "delete flowtable \(t) \(name)"
            case .addSet(let set):
                let elements = set.elements.isEmpty ? "" : " elements = \(list(set.elements));"
                return "add set \(t) \(set.name) { type ifname;\(elements) }"
            case .addSetElements(let set, let elements):
                return "add element \(t) \(set) \(list(elements))"
            case .deleteSetElements(let set, let elements):
                return "delete element \(t) \(set) \(list(elements))"
            case .deleteSet(let name):
                return "delete set \(t) \(name)"
            case .addChain(let chain):
                return "add chain \(t) \(chain.name) { \(chainHeader(chain)) }"
            case .deleteChain(let name):
                return "delete chain \(t) \(name)"
            case .addRule(let rule):
                return "add rule \(t) \(rule.chain) \(ruleBody(rule))"
            case .deleteRule(let chain, let handle):
                return "delete rule \(t) \(chain) handle \(handle)"
            }
        }
    }
}
