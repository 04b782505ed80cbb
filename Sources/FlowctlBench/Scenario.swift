import FlowctlCore
import Foundation
import TOMLKit

/// A benchmark scenario, as written in Scenarios/*.toml: the topology
/// (namespaces standing for VMs and containers, bridges, VLANs, uplinks,
/// NAT), the traffic, the modes to compare and what to expect.
public struct Scenario: Hashable, Sendable, Codable {
    public struct Bridge: Hashable, Sendable, Codable {
        public var name: String
        public var vlanFiltering: Bool
        /// Addresses on the bridge itself (the VMs' gateway when untagged).
        public var addresses: [String]
        /// VLAN uppers on the bridge (br0.10), each with its addresses.
        public var vlans: [VLAN]
    }

    public struct VLAN: Hashable, Sendable, Codable {
        public var id: UInt16
        public var addresses: [String]
    }

    public enum Attachment: String, Hashable, Sendable, Codable {
        case veth, tap
    }

    /// A namespace standing for a VM or a container, on a bridge.
    public struct Guest: Hashable, Sendable, Codable {
        public var name: String
        public var bridge: String
        public var attach: Attachment
        /// Tagged: the guest sends 802.1Q frames with this id.
        public var vlan: UInt16?
        public var addresses: [String]
        public var gateway: String?
        public var gateway6: String?
        /// How many copies (containers scenario): name0, name1, ...
        public var count: Int
    }

    /// A namespace behind the host's uplink, reached by routing.
    public struct External: Hashable, Sendable, Codable {
        public var name: String
        /// 802.1Q id on the uplink (the host's side is a VLAN sub-interface).
        public var vlan: UInt16?
        public var hostAddresses: [String]
        public var addresses: [String]
        /// Prefixes the external side routes back through the host.
        public var routes: [String]
        /// libvirt-style masquerade of guest traffic leaving by the uplink.
        public var masquerade: Bool
    }

    public enum TrafficKind: String, Hashable, Sendable, Codable, CaseIterable {
        case udp
        case tcpBulk = "tcp-bulk"
        case tcpCRR = "tcp-crr"
        case rr
    }

    public enum Generator: String, Hashable, Sendable, Codable {
        /// The built-in user-space generators (sendmmsg, TCP sockets).
        case socket
        /// The kernel's pktgen in the source guest, for rates beyond user
        /// space (UDP only).
        case pktgen
        /// Forwarding only: pktgen hands the guest's frames to the host side
        /// of its bridge port as if the port had received them (UDP only;
        /// one guest, no NAT). Each flow is answered once before the run, as
        /// a real flow would be, so conntrack sees it established.
        case inject
    }

    public enum Sink: String, Hashable, Sendable, Codable {
        /// The generators' own receiver in the destination (a socket).
        case socket
        /// Count and drop at the receiving device's ingress (a tap guest:
        /// at the host side's egress), so the receiver costs nothing (UDP only).
        case drop
    }

    public struct Traffic: Hashable, Sendable, Codable {
        public var kind: TrafficKind
        public var generator: Generator = .socket
        public var sink: Sink = .socket
        public var from: String
        public var to: String
        /// The destination address (default: `to`'s first address of the family).
        public var address: String?
        /// UDP payload bytes (18 makes 64-byte Ethernet frames over IPv4).
        public var size: Int
        public var flows: Int
        public var duration: Double
    }

    public enum Mode: Hashable, Sendable, Codable, CustomStringConvertible {
        /// Conntrack and the same forward rules, no flowtable.
        case slow
        /// `flowctl enable` on every bridge of the scenario.
        case flowctl
        /// A hand-written nft file loaded on top of the slow-path rules.
        case nftFile(String)

        public var description: String {
            switch self {
            case .slow: "slow"
            case .flowctl: "flowctl"
            case .nftFile(let path): "nft:\(path)"
            }
        }

        init?(text: String) {
            switch text {
            case "slow": self = .slow
            case "flowctl": self = .flowctl
            default:
                guard text.hasPrefix("nft:"), text.count > 4 else { return nil }
                self = .nftFile(String(text.dropFirst(4)))
            }
        }
    }

    public struct Expectation: Hashable, Sendable, Codable {
        /// Median fast-path packets/s over median slow-path packets/s.
        public var minRatio: Double?
        /// Fraction of flows seen offloaded during the flowctl runs.
        public var minOffloadedFraction: Double?
        /// Least flowctl / MODE of the primary metric, per nft: mode
        /// (e.g. 0.97 of a hand-written flowtable); 1.0 for modes not named.
        public var minRatioTo: [String: Double] = [:]

        public init(minRatio: Double? = nil, minOffloadedFraction: Double? = nil, minRatioTo: [String: Double] = [:]) {
            self.minRatio = minRatio
            self.minOffloadedFraction = minOffloadedFraction
            self.minRatioTo = minRatioTo
        }
    }

    public var name: String
    public var description: String
    public var bridges: [Bridge]
    public var guests: [Guest]
    public var externals: [External]
    public var traffic: Traffic
    public var modes: [Mode]
    /// nft files loaded in every mode on top of the base rules: the host's
    /// own firewall, which the slow path walks and the fast path skips.
    public var hostRules: [String] = []
    public var repetitions: Int
    public var expect: Expectation
}

/// An error in a scenario file: where, and what was expected.
public struct ScenarioError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message)"
    }
}

extension Scenario {
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ScenarioError(file: path, line: nil, message: "cannot read: \((error as NSError).localizedDescription)")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(ScenarioError) -> Scenario {
        let root: TOMLTable
        if let problem = TOMLText.check(text) {
            throw ScenarioError(file: file, line: problem.line, message: "TOML syntax: \(problem.message)")
        }
        do { root = try TOMLTable(string: text) } catch {
            if let parse = error as? TOMLParseError {
                throw ScenarioError(file: file, line: parse.source.begin.line, message: "TOML syntax: \(parse.description)")
            }
            throw ScenarioError(file: file, line: nil, message: "TOML syntax: \(error)")
        }
        var reader = Reader(file: file, text: text)
        return try reader.scenario(root)
    }
}

/// Reads the TOML tree with precise errors. TOMLKit keeps no positions for
/// values, so the line of a key is found in the text (first `key =` after
/// the table's header).
struct Reader {
    let file: String
    let lines: [Substring]

    init(file: String, text: String) {
        self.file = file
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    func line(of key: String, in table: String?, occurrence: Int = 0) -> Int? {
        var start = 0
        if let table {
            var seen = -1
            for (index, line) in lines.enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed == "[\(table)]" || trimmed == "[[\(table)]]" {
                    seen += 1
                    if seen == occurrence { start = index; break }
                }
            }
        }
        for index in start..<lines.count {
            let trimmed = lines[index].trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix(key + " ") || trimmed.hasPrefix(key + "=") { return index + 1 }
            if index > start, trimmed.hasPrefix("["), table != nil { break }
        }
        return table.flatMap { table in
            lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[\(table)") || $0.contains("[[\(table)]]") }
                .map { $0 + 1 }
        }
    }

    func fail(_ message: String, key: String? = nil, table: String? = nil, occurrence: Int = 0) -> ScenarioError {
        ScenarioError(file: file, line: key.flatMap { line(of: $0, in: table, occurrence: occurrence) }
                          ?? table.flatMap { line(of: "", in: $0, occurrence: occurrence) },
                      message: message)
    }

    struct Context {
        let table: TOMLTable
        let name: String?
        let occurrence: Int
        let known: Set<String>
    }

    func checkKeys(_ context: Context) throws(ScenarioError) {
        for key in context.table.keys where !context.known.contains(key) {
            throw fail("unknown key \"\(key)\"\(context.name.map { " in [\($0)]" } ?? ""); expected one of: \(context.known.sorted().joined(separator: ", "))",
                       key: key, table: context.name, occurrence: context.occurrence)
        }
    }

    func string(_ c: Context, _ key: String, required: Bool = true) throws(ScenarioError) -> String? {
        guard let value = c.table[key] else {
            if required { throw fail("missing key \"\(key)\"\(c.name.map { " in [\($0)]" } ?? ""): expected a string", table: c.name, occurrence: c.occurrence) }
            return nil
        }
        guard let text = value.string else {
            throw fail("\"\(key)\" must be a string, found \(value.type)", key: key, table: c.name, occurrence: c.occurrence)
        }
        return text
    }

    func int(_ c: Context, _ key: String, default defaultValue: Int?, range: ClosedRange<Int>) throws(ScenarioError) -> Int? {
        guard let value = c.table[key] else { return defaultValue }
        guard let number = value.int else {
            throw fail("\"\(key)\" must be an integer, found \(value.type)", key: key, table: c.name, occurrence: c.occurrence)
        }
        guard range.contains(number) else {
            throw fail("\"\(key)\" must be between \(range.lowerBound) and \(range.upperBound), found \(number)", key: key, table: c.name, occurrence: c.occurrence)
        }
        return number
    }

    func double(_ c: Context, _ key: String, default defaultValue: Double?) throws(ScenarioError) -> Double? {
        guard let value = c.table[key] else { return defaultValue }
        if let number = value.double { return number }
        if let number = value.int { return Double(number) }
        throw fail("\"\(key)\" must be a number, found \(value.type)", key: key, table: c.name, occurrence: c.occurrence)
    }

    func bool(_ c: Context, _ key: String, default defaultValue: Bool) throws(ScenarioError) -> Bool {
        guard let value = c.table[key] else { return defaultValue }
        guard let flag = value.bool else {
            throw fail("\"\(key)\" must be true or false, found \(value.type)", key: key, table: c.name, occurrence: c.occurrence)
        }
        return flag
    }

    func strings(_ c: Context, _ key: String) throws(ScenarioError) -> [String] {
        guard let value = c.table[key] else { return [] }
        guard let array = value.array else {
            throw fail("\"\(key)\" must be an array of strings, found \(value.type)", key: key, table: c.name, occurrence: c.occurrence)
        }
        var result: [String] = []
        for element in array {
            guard let text = element.string else {
                throw fail("\"\(key)\" must hold strings only", key: key, table: c.name, occurrence: c.occurrence)
            }
            result.append(text)
        }
        return result
    }

    func addresses(_ c: Context, _ key: String) throws(ScenarioError) -> [String] {
        let values = try strings(c, key)
        for value in values where !Self.isPrefix(value) {
            throw fail("\"\(key)\": \(quoted(value)) is not an address with prefix length (e.g. 198.18.1.1/24 or 2001:2::1/64)",
                       key: key, table: c.name, occurrence: c.occurrence)
        }
        for value in values where !Self.isTestAddress(value) {
            throw fail("\"\(key)\": \(value) is outside the benchmarking ranges 198.18.0.0/15 and 2001:2::/48",
                       key: key, table: c.name, occurrence: c.occurrence)
        }
        return values
    }

    static func isPrefix(_ text: String) -> Bool {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let length = Int(parts[1]) else { return false }
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, String(parts[0]), &v4) == 1 { return (0...32).contains(length) }
        if inet_pton(AF_INET6, String(parts[0]), &v6) == 1 { return (0...128).contains(length) }
        return false
    }

    static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// Only the benchmarking ranges: 198.18.0.0/15 and 2001:2::/48.
    static func isTestAddress(_ text: String) -> Bool {
        let host = String(text.split(separator: "/").first ?? "")
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            let value = UInt32(bigEndian: v4.s_addr)
            return value & 0xFFFE_0000 == 0xC612_0000
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: v6) { Array($0) }
            return bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x00 && bytes[3] == 0x02
                && bytes[4] == 0 && bytes[5] == 0
        }
        return false
    }

    func tables(_ root: TOMLTable, _ key: String) throws(ScenarioError) -> [TOMLTable] {
        guard let value = root[key] else { return [] }
        guard let array = value.array else {
            throw fail("\"\(key)\" must be an array of tables ([[\(key)]])", key: key, table: nil)
        }
        var result: [TOMLTable] = []
        for element in array {
            guard let table = element.table else { throw fail("\"\(key)\" must be an array of tables ([[\(key)]])", key: key, table: nil) }
            result.append(table)
        }
        return result
    }

    mutating func scenario(_ root: TOMLTable) throws(ScenarioError) -> Scenario {
        let top = Context(table: root, name: nil, occurrence: 0,
                          known: ["name", "description", "bridge", "guest", "external", "traffic", "run", "expect"])
        try checkKeys(top)
        let name = try string(top, "name")!
        let description = try string(top, "description", required: false) ?? ""

        var bridges: [Scenario.Bridge] = []
        for (index, table) in try tables(root, "bridge").enumerated() {
            let c = Context(table: table, name: "bridge", occurrence: index,
                            known: ["name", "vlan_filtering", "addresses", "vlan"])
            try checkKeys(c)
            let bridgeName = try string(c, "name")!
            guard Planner.isValidInterfaceName(bridgeName) else {
                throw fail("bridge name \(quoted(bridgeName)) is not a valid interface name", key: "name", table: "bridge", occurrence: index)
            }
            var vlans: [Scenario.VLAN] = []
            for vlanTable in try tables(table, "vlan") {
                let v = Context(table: vlanTable, name: "bridge.vlan", occurrence: vlans.count, known: ["id", "addresses"])
                try checkKeys(v)
                guard let id = try int(v, "id", default: nil, range: 1...4094) else {
                    throw fail("missing key \"id\" in [[bridge.vlan]]: expected a VLAN id 1-4094", table: "bridge.vlan", occurrence: vlans.count)
                }
                vlans.append(Scenario.VLAN(id: UInt16(id), addresses: try addresses(v, "addresses")))
            }
            bridges.append(Scenario.Bridge(name: bridgeName, vlanFiltering: try bool(c, "vlan_filtering", default: false),
                                           addresses: try addresses(c, "addresses"), vlans: vlans))
        }
        guard !bridges.isEmpty else { throw fail("at least one [[bridge]] is required", table: nil) }

        var guests: [Scenario.Guest] = []
        for (index, table) in try tables(root, "guest").enumerated() {
            let c = Context(table: table, name: "guest", occurrence: index,
                            known: ["name", "bridge", "attach", "vlan", "addresses", "gateway", "gateway6", "count"])
            try checkKeys(c)
            let bridge = try string(c, "bridge")!
            guard bridges.contains(where: { $0.name == bridge }) else {
                throw fail("guest bridge \(quoted(bridge)) is not one of the [[bridge]] names (\(bridges.map(\.name).joined(separator: ", ")))",
                           key: "bridge", table: "guest", occurrence: index)
            }
            let attachText = try string(c, "attach", required: false) ?? "veth"
            guard let attach = Scenario.Attachment(rawValue: attachText) else {
                throw fail("\"attach\" must be \"veth\" or \"tap\", found \(quoted(attachText))", key: "attach", table: "guest", occurrence: index)
            }
            for key in ["gateway", "gateway6"] {
                if let gateway = try string(c, key, required: false), !Self.isAddress(gateway) {
                    throw fail("\"\(key)\": \(quoted(gateway)) is not an address", key: key, table: "guest", occurrence: index)
                }
            }
            guests.append(Scenario.Guest(
                name: try string(c, "name")!, bridge: bridge, attach: attach,
                vlan: try int(c, "vlan", default: nil, range: 1...4094).map { UInt16($0) },
                addresses: try addresses(c, "addresses"), gateway: try string(c, "gateway", required: false),
                gateway6: try string(c, "gateway6", required: false),
                count: try int(c, "count", default: 1, range: 1...1000)!))
        }
        guard !guests.isEmpty else { throw fail("at least one [[guest]] (a VM or container) is required", table: nil) }

        var externals: [Scenario.External] = []
        for (index, table) in try tables(root, "external").enumerated() {
            let c = Context(table: table, name: "external", occurrence: index,
                            known: ["name", "vlan", "host_addresses", "addresses", "routes", "masquerade"])
            try checkKeys(c)
            externals.append(Scenario.External(
                name: try string(c, "name")!, vlan: try int(c, "vlan", default: nil, range: 1...4094).map { UInt16($0) },
                hostAddresses: try addresses(c, "host_addresses"), addresses: try addresses(c, "addresses"),
                routes: try addresses(c, "routes"), masquerade: try bool(c, "masquerade", default: false)))
        }

        guard let trafficTable = root["traffic"]?.table else { throw fail("missing table [traffic]", table: nil) }
        let t = Context(table: trafficTable, name: "traffic", occurrence: 0,
                        known: ["kind", "generator", "sink", "from", "to", "address", "size", "flows", "duration"])
        try checkKeys(t)
        let kindText = try string(t, "kind")!
        guard let kind = Scenario.TrafficKind(rawValue: kindText) else {
            throw fail("\"kind\" must be one of \(Scenario.TrafficKind.allCases.map(\.rawValue).joined(separator: ", ")), found \(quoted(kindText))",
                       key: "kind", table: "traffic")
        }
        let names = Set(guests.flatMap { guest in guest.count == 1 ? [guest.name] : (0..<guest.count).map { "\(guest.name)\($0)" } + [guest.name] })
            .union(externals.map(\.name))
        let from = try string(t, "from")!, to = try string(t, "to")!
        for (key, value) in [("from", from), ("to", to)] where !names.contains(value) {
            throw fail("traffic \(key) \(quoted(value)) is not a guest or external name (\(names.sorted().joined(separator: ", ")))",
                       key: key, table: "traffic")
        }
        if let address = try string(t, "address", required: false), !Self.isTestAddress(address) {
            throw fail("traffic address \(address) is outside 198.18.0.0/15 and 2001:2::/48", key: "address", table: "traffic")
        }
        let generatorText = try string(t, "generator", required: false) ?? "socket"
        guard let generator = Scenario.Generator(rawValue: generatorText) else {
            throw fail("\"generator\" must be \"socket\", \"pktgen\" or \"inject\", found \(quoted(generatorText))", key: "generator", table: "traffic")
        }
        if generator != .socket, kind != .udp {
            throw fail("generator \"\(generator.rawValue)\" sends UDP only (kind = \"udp\")", key: "generator", table: "traffic")
        }
        if generator == .inject {
            guard let guest = guests.first(where: { $0.name == from }), guest.count == 1 else {
                throw fail("generator \"inject\" sends from one guest's port; \(quoted(from)) is not a single [[guest]]",
                           key: "from", table: "traffic")
            }
            if externals.contains(where: \.masquerade) {
                throw fail("generator \"inject\" answers each flow once before the run and cannot do so through NAT (masquerade)",
                           key: "generator", table: "traffic")
            }
        }
        let sinkText = try string(t, "sink", required: false) ?? "socket"
        guard let sink = Scenario.Sink(rawValue: sinkText) else {
            throw fail("\"sink\" must be \"socket\" or \"drop\", found \(quoted(sinkText))", key: "sink", table: "traffic")
        }
        if sink == .drop, kind != .udp {
            throw fail("sink \"drop\" counts UDP only (kind = \"udp\")", key: "sink", table: "traffic")
        }
        if generator == .inject || sink == .drop,
           !externals.contains(where: { $0.name == to }) && !guests.contains(where: { $0.name == to && $0.count == 1 }) {
            throw fail("generator \"inject\" and sink \"drop\" need one destination; \(quoted(to)) is a group of guests",
                       key: "to", table: "traffic")
        }
        var traffic = Scenario.Traffic(
            kind: kind, from: from, to: to, address: try string(t, "address", required: false),
            size: try int(t, "size", default: 18, range: 1...9000)!, flows: try int(t, "flows", default: 1, range: 1...55000)!,
            duration: try double(t, "duration", default: 3)!)
        traffic.generator = generator
        traffic.sink = sink
        if generator == .socket, traffic.flows > 4096 {
            throw fail("the socket generators open a socket per flow: at most 4096 flows (use generator \"pktgen\" or \"inject\" for more)",
                       key: "flows", table: "traffic")
        }
        guard traffic.duration > 0 && traffic.duration <= 600 else {
            throw fail("\"duration\" must be between 0 and 600 seconds", key: "duration", table: "traffic")
        }

        var modes: [Scenario.Mode] = [.slow, .flowctl]
        var repetitions = 5
        var hostRules: [String] = []
        if let runTable = root["run"]?.table {
            let r = Context(table: runTable, name: "run", occurrence: 0, known: ["modes", "repetitions", "host_rules"])
            try checkKeys(r)
            hostRules = try strings(r, "host_rules")
            if runTable["modes"] != nil {
                modes = []
                for text in try strings(r, "modes") {
                    guard let mode = Scenario.Mode(text: text) else {
                        throw fail("mode \(quoted(text)): expected \"slow\", \"flowctl\" or \"nft:FILE\"", key: "modes", table: "run")
                    }
                    modes.append(mode)
                }
                guard !modes.isEmpty else { throw fail("\"modes\" must name at least one mode", key: "modes", table: "run") }
            }
            repetitions = try int(r, "repetitions", default: 5, range: 1...1000)!
        }
        var expect = Scenario.Expectation()
        if let expectTable = root["expect"]?.table {
            let e = Context(table: expectTable, name: "expect", occurrence: 0, known: ["min_ratio", "min_offloaded_fraction", "min_ratio_to"])
            try checkKeys(e)
            expect.minRatio = try double(e, "min_ratio", default: nil)
            expect.minOffloadedFraction = try double(e, "min_offloaded_fraction", default: nil)
            if let value = expectTable["min_ratio_to"] {
                guard let table = value.table else {
                    throw fail("\"min_ratio_to\" must be a table of mode = ratio, e.g. { \"nft:FILE\" = 0.97 }", key: "min_ratio_to", table: "expect")
                }
                let each = Context(table: table, name: "expect", occurrence: 0, known: Set(table.keys))
                for key in table.keys {
                    guard modes.contains(where: { $0.description == key }), key != "flowctl" else {
                        throw fail("\"min_ratio_to\": \(quoted(key)) is not one of the modes compared with flowctl (\(modes.filter { $0 != .flowctl }.map(\.description).joined(separator: ", ")))",
                                   key: "min_ratio_to", table: "expect")
                    }
                    expect.minRatioTo[key] = try double(each, key, default: nil)
                }
            }
        }
        return Scenario(name: name, description: description, bridges: bridges, guests: guests, externals: externals,
                        traffic: traffic, modes: modes, hostRules: hostRules, repetitions: repetitions, expect: expect)
    }
}

func quoted(_ text: String) -> String { "\"" + text + "\"" }
