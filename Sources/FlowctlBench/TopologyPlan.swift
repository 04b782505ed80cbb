import Foundation

/// A scenario's topology as the iproute2/nft commands that build it and
/// the ones that take it down, in order. Pure: tested without root. Every
/// namespace and device name is derived from the scenario, prefixed so
/// teardown removes exactly what setup made.
public struct TopologyPlan: Hashable, Sendable {
    public struct Step: Hashable, Sendable, CustomStringConvertible {
        public var argv: [String]
        public var input: String?
        public init(_ argv: [String], input: String? = nil) {
            self.argv = argv
            self.input = input
        }
        public var description: String { argv.joined(separator: " ") }
    }

    public var setup: [Step]
    public var teardown: [Step]
    /// Namespace of each guest or external name.
    public var namespaces: [String: String]
    /// Addresses (without prefix length) of each guest or external name.
    public var addresses: [String: [String]]
    /// Host-side devices a hand-written flowtable would list: ports and uplinks.
    public var realDevices: [String]
    /// Long-running helpers (tap relays standing in for a VM's NIC): argv
    /// after `flowctl`, started after setup, killed before teardown.
    public var helpers: [[String]] = []
    /// The members of a guest group (count > 1): c -> c0, c1, ...
    public var members: [String: [String]] = [:]
    /// How each guest (member) and external meets the host.
    public var attachments: [String: Attachment] = [:]

    /// Where a guest or external meets the host: the host side of its link,
    /// and the addresses it sends through.
    public struct Attachment: Hashable, Sendable {
        public var namespace: String
        /// The host-side device of its link: the bridge port (veth or tap)
        /// or the uplink (the base device, tagged frames when `vlan` is set).
        public var port: String
        public var isTap: Bool
        /// 802.1Q id of its frames on `port`.
        public var vlan: UInt16?
        /// Its next hops into the host (IPv4, IPv6), without prefix length.
        public var gateways: [String]
        /// The device inside its namespace that carries its frames.
        public var device: String { "eth0" }
    }

    public static let prefix = "fb-"
    /// The namespace that plays the host: bridges, uplinks, rules, flowctl
    /// and the sysctls live there, so a bench never touches this machine's
    /// own routes, forwarding settings or firewall.
    public static let host = prefix + "host"

    /// `argv` run inside the host namespace.
    public static func inHost(_ argv: [String]) -> [String] { ["ip", "netns", "exec", host] + argv }

    /// A step of the host's side moved into the host namespace; steps that
    /// name their namespace (`ip -n NS`, `ip netns`) stay as they are.
    static func inHost(_ step: Step) -> Step {
        if step.argv.first == "ip", ["-n", "netns"].contains(step.argv.dropFirst().first) { return step }
        return Step(inHost(step.argv), input: step.input)
    }

    public enum PlanError: Error, CustomStringConvertible {
        case unsupported(String)
        public var description: String {
            switch self { case .unsupported(let what): "scenario not supported by the runner: \(what)" }
        }
    }

    static func namespace(_ name: String) -> String { prefix + name }

    /// Host-side device names, at most 15 bytes.
    static func device(_ kind: String, _ name: String) -> String { String((kind + "-" + name).prefix(15)) }

    /// `base` with `offset` added to its last IPv4 byte or IPv6 group.
    static func offset(_ prefix: String, by offset: Int) -> String {
        guard offset > 0 else { return prefix }
        let parts = prefix.split(separator: "/")
        let host = String(parts[0])
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            let value = UInt32(bigEndian: v4.s_addr) &+ UInt32(offset)
            v4.s_addr = value.bigEndian
            var buffer = [CChar](repeating: 0, count: 64)
            inet_ntop(AF_INET, &v4, &buffer, 64)
            return String(cString: buffer) + (parts.count > 1 ? "/\(parts[1])" : "")
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            withUnsafeMutableBytes(of: &v6) { bytes in
                let value = (UInt16(bytes[14]) << 8 | UInt16(bytes[15])) &+ UInt16(offset)
                bytes[14] = UInt8(value >> 8)
                bytes[15] = UInt8(value & 0xff)
            }
            var buffer = [CChar](repeating: 0, count: 64)
            inet_ntop(AF_INET6, &v6, &buffer, 64)
            return String(cString: buffer) + (parts.count > 1 ? "/\(parts[1])" : "")
        }
        return prefix
    }

    static func isIPv6(_ address: String) -> Bool { address.contains(":") }

    public init(_ scenario: Scenario) throws {
        var setup: [Step] = [
            Step(["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            Step(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]),
        ]
        var teardown: [Step] = []
        var namespaces: [String: String] = [:]
        var addresses: [String: [String]] = [:]
        var realDevices: [String] = []
        var groupMembers: [String: [String]] = [:]
        var attachments: [String: Attachment] = [:]

        for bridge in scenario.bridges {
            var add = ["ip", "link", "add", bridge.name, "type", "bridge"]
            if bridge.vlanFiltering { add += ["vlan_filtering", "1"] }
            setup.append(Step(add))
            setup.append(Step(["ip", "link", "set", bridge.name, "up"]))
            for address in bridge.addresses {
                setup.append(Step(["ip", "addr", "add", address, "dev", bridge.name] + (Self.isIPv6(address) ? ["nodad"] : [])))
            }
            for vlan in bridge.vlans {
                let upper = "\(bridge.name).\(vlan.id)"
                if bridge.vlanFiltering {
                    setup.append(Step(["bridge", "vlan", "add", "dev", bridge.name, "vid", "\(vlan.id)", "self"]))
                }
                setup.append(Step(["ip", "link", "add", "link", bridge.name, "name", upper, "type", "vlan", "id", "\(vlan.id)"]))
                setup.append(Step(["ip", "link", "set", upper, "up"]))
                for address in vlan.addresses {
                    setup.append(Step(["ip", "addr", "add", address, "dev", upper] + (Self.isIPv6(address) ? ["nodad"] : [])))
                }
            }
            teardown.append(Step(["ip", "link", "del", bridge.name]))
        }

        var helpers: [[String]] = []
        for guest in scenario.guests {
            for index in 0..<guest.count {
                let name = guest.count == 1 ? guest.name : "\(guest.name)\(index)"
                let ns = Self.namespace(name)
                let port = Self.device(guest.attach == .tap ? "tap" : "vnet", name)
                namespaces[name] = ns
                setup.append(Step(["ip", "netns", "add", ns]))
                switch guest.attach {
                case .veth:
                    setup.append(Step(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns]))
                case .tap:
                    // The port is a tap, as with QEMU; a relay process holds it and
                    // moves frames to the guest's eth0 (via its veth peer relay0).
                    setup.append(Step(["ip", "tuntap", "add", "dev", port, "mode", "tap"]))
                    setup.append(Step(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "relay0"]))
                    setup.append(Step(["ip", "-n", ns, "link", "set", "relay0", "up"]))
                    helpers.append(["traffic", "tap-relay", "--tap", port, "--netns", "/run/netns/\(ns)", "--device", "relay0"])
                    teardown.append(Step(["ip", "link", "del", port]))
                }
                setup.append(Step(["ip", "link", "set", port, "master", guest.bridge]))
                setup.append(Step(["ip", "link", "set", port, "up"]))
                if let vid = guest.vlan {
                    setup.append(Step(["bridge", "vlan", "add", "dev", port, "vid", "\(vid)"]))
                }
                realDevices.append(port)
                let inner = guest.vlan.map { "eth0.\($0)" } ?? "eth0"
                setup.append(Step(["ip", "-n", ns, "link", "set", "lo", "up"]))
                setup.append(Step(["ip", "-n", ns, "link", "set", "eth0", "up"]))
                if let vid = guest.vlan {
                    setup.append(Step(["ip", "-n", ns, "link", "add", "link", "eth0", "name", inner, "type", "vlan", "id", "\(vid)"]))
                    setup.append(Step(["ip", "-n", ns, "link", "set", inner, "up"]))
                }
                var own: [String] = []
                for address in guest.addresses {
                    let shifted = Self.offset(address, by: index)
                    own.append(String(shifted.split(separator: "/")[0]))
                    setup.append(Step(["ip", "-n", ns, "addr", "add", shifted, "dev", inner] + (Self.isIPv6(shifted) ? ["nodad"] : [])))
                }
                addresses[name] = own
                attachments[name] = Attachment(namespace: ns, port: port, isTap: guest.attach == .tap, vlan: guest.vlan,
                                               gateways: [guest.gateway, guest.gateway6].compactMap { $0 })
                if let gateway = guest.gateway {
                    setup.append(Step(["ip", "-n", ns, "route", "add", "default", "via", gateway]))
                }
                if let gateway = guest.gateway6 {
                    setup.append(Step(["ip", "-n", ns, "-6", "route", "add", "default", "via", gateway]))
                }
                teardown.append(Step(["ip", "netns", "del", ns]))
            }
            if guest.count > 1 {
                addresses[guest.name] = (0..<guest.count).flatMap { addresses["\(guest.name)\($0)"] ?? [] }
                groupMembers[guest.name] = (0..<guest.count).map { "\(guest.name)\($0)" }
            }
        }

        for external in scenario.externals {
            let ns = Self.namespace(external.name)
            let uplink = Self.device("up", external.name)
            namespaces[external.name] = ns
            setup.append(Step(["ip", "netns", "add", ns]))
            setup.append(Step(["ip", "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", ns]))
            setup.append(Step(["ip", "link", "set", uplink, "up"]))
            realDevices.append(uplink)
            let hostSide = external.vlan.map { "\(uplink).\($0)" } ?? uplink
            if let vid = external.vlan {
                setup.append(Step(["ip", "link", "add", "link", uplink, "name", hostSide, "type", "vlan", "id", "\(vid)"]))
                setup.append(Step(["ip", "link", "set", hostSide, "up"]))
            }
            for address in external.hostAddresses {
                setup.append(Step(["ip", "addr", "add", address, "dev", hostSide] + (Self.isIPv6(address) ? ["nodad"] : [])))
            }
            let inner = external.vlan.map { "eth0.\($0)" } ?? "eth0"
            setup.append(Step(["ip", "-n", ns, "link", "set", "lo", "up"]))
            setup.append(Step(["ip", "-n", ns, "link", "set", "eth0", "up"]))
            if let vid = external.vlan {
                setup.append(Step(["ip", "-n", ns, "link", "add", "link", "eth0", "name", inner, "type", "vlan", "id", "\(vid)"]))
                setup.append(Step(["ip", "-n", ns, "link", "set", inner, "up"]))
            }
            var own: [String] = []
            for address in external.addresses {
                own.append(String(address.split(separator: "/")[0]))
                setup.append(Step(["ip", "-n", ns, "addr", "add", address, "dev", inner] + (Self.isIPv6(address) ? ["nodad"] : [])))
            }
            addresses[external.name] = own
            attachments[external.name] = Attachment(
                namespace: ns, port: uplink, isTap: false, vlan: external.vlan,
                gateways: external.hostAddresses.map { String($0.split(separator: "/")[0]) })
            // The host's default route leaves through this uplink: flowctl finds it.
            for hostAddress in external.hostAddresses {
                let v6 = Self.isIPv6(hostAddress)
                if let peer = own.first(where: { Self.isIPv6($0) == v6 }) {
                    setup.append(Step(["ip"] + (v6 ? ["-6"] : []) + ["route", "replace", "default", "via", peer, "dev", hostSide]))
                    for route in external.routes where Self.isIPv6(route) == v6 {
                        setup.append(Step(["ip", "-n", ns] + (v6 ? ["-6"] : []) + ["route", "add", route, "via",
                                           String(hostAddress.split(separator: "/")[0])]))
                    }
                }
            }
            if external.masquerade {
                setup.append(Step(["nft", "-f", "-"], input: """
                    table ip fb_nat {
                        chain postrouting {
                            type nat hook postrouting priority srcnat; policy accept;
                            oifname "\(hostSide)" masquerade
                        }
                    }
                    """))
                teardown.append(Step(["nft", "delete", "table", "ip", "fb_nat"]))
            }
            teardown.append(Step(["ip", "netns", "del", ns]))
        }
        for name in scenario.guests.map(\.name) + scenario.externals.map(\.name) where Self.namespace(name) == Self.host {
            throw PlanError.unsupported("the name \"\(name)\" is reserved for the host's namespace")
        }
        self.setup = [Step(["ip", "netns", "add", Self.host]), Step(["ip", "-n", Self.host, "link", "set", "lo", "up"])]
            + setup.map(Self.inHost)
        // Deleting the host namespace takes its bridges, links, rules and flowctl's state with it.
        self.teardown = teardown.reversed().map(Self.inHost) + [Step(["ip", "netns", "del", Self.host])]
        self.namespaces = namespaces
        self.addresses = addresses
        self.realDevices = realDevices
        self.members = groupMembers
        self.helpers = helpers
        self.attachments = attachments
    }
}
