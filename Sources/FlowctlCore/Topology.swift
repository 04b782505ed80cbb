/// What rtnetlink says about the host, as plain values. Built by FlowctlLinux
/// (libnl-route-3) or by tests; everything the planner needs and nothing more.

/// The kind of a network device, from IFLA_INFO_KIND (nil kind means a
/// physical NIC, or loopback).
public enum LinkKind: Hashable, Sendable, Codable, CustomStringConvertible {
    case physical
    case loopback
    case bridge
    case vlan
    case veth
    /// tun/tap devices (IFLA_INFO_KIND "tun"): how most VMs attach.
    case tun
    case bond
    case macvlan
    case macvtap
    case vxlan
    case dummy
    case other(String)

    /// Maps the kernel's IFLA_INFO_KIND string (nil when absent).
    public init(infoKind: String?, isLoopback: Bool = false) {
        if isLoopback { self = .loopback; return }
        switch infoKind {
        case nil, "": self = .physical
        case "bridge": self = .bridge
        case "vlan": self = .vlan
        case "veth": self = .veth
        case "tun": self = .tun
        case "bond": self = .bond
        case "macvlan": self = .macvlan
        case "macvtap": self = .macvtap
        case "vxlan": self = .vxlan
        case "dummy": self = .dummy
        case let other?: self = .other(other)
        }
    }

    public var description: String {
        switch self {
        case .physical: "physical"
        case .loopback: "loopback"
        case .bridge: "bridge"
        case .vlan: "vlan"
        case .veth: "veth"
        case .tun: "tun"
        case .bond: "bond"
        case .macvlan: "macvlan"
        case .macvtap: "macvtap"
        case .vxlan: "vxlan"
        case .dummy: "dummy"
        case .other(let kind): kind
        }
    }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = raw == "physical" ? .physical : raw == "loopback" ? .loopback : LinkKind(infoKind: raw)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One network device.
public struct Link: Hashable, Sendable, Codable {
    public var index: Int32
    public var name: String
    public var kind: LinkKind
    /// IFLA_MASTER: the bridge (or bond) this device is enslaved to.
    public var masterIndex: Int32?
    /// IFLA_LINK for stacked devices (vlan, macvlan): the lower device.
    public var lowerIndex: Int32?
    /// 802.1Q id, for `kind == .vlan`.
    public var vlanID: UInt16?
    /// IFF_UP (administratively up).
    public var isUp: Bool
    /// IF_OPER_UP or IF_OPER_UNKNOWN with carrier.
    public var isRunning: Bool
    public var mtu: UInt32
    /// ethtool "hw-tc-offload" is on; nil when it could not be read.
    public var hwTCOffload: Bool?
    /// For bridges: VLAN filtering enabled; nil when unknown or not a bridge.
    public var vlanFiltering: Bool?
    /// For bridges: the MAC address was set explicitly (addr_assign_type
    /// NET_ADDR_SET). Otherwise a bridge takes its lowest port MAC, which
    /// changes as ports come and go; nil when unknown or not a bridge.
    public var addressFixed: Bool?

    public init(
        index: Int32, name: String, kind: LinkKind, masterIndex: Int32? = nil,
        lowerIndex: Int32? = nil, vlanID: UInt16? = nil, isUp: Bool = true,
        isRunning: Bool = true, mtu: UInt32 = 1500, hwTCOffload: Bool? = false,
        vlanFiltering: Bool? = nil, addressFixed: Bool? = nil
    ) {
        self.index = index
        self.name = name
        self.kind = kind
        self.masterIndex = masterIndex
        self.lowerIndex = lowerIndex
        self.vlanID = vlanID
        self.isUp = isUp
        self.isRunning = isRunning
        self.mtu = mtu
        self.hwTCOffload = hwTCOffload
        self.vlanFiltering = vlanFiltering
        self.addressFixed = addressFixed
    }
}

public enum AddressFamily: String, Hashable, Sendable, Codable {
    case ipv4, ipv6
}

/// One route, reduced to what uplink discovery needs.
public struct Route: Hashable, Sendable, Codable {
    public var family: AddressFamily
    /// Destination prefix in text form ("0.0.0.0/0", "2001:2::/48").
    public var destination: String
    public var prefixLength: UInt8
    /// Routing table id (254 = main, 255 = local).
    public var table: UInt32
    /// Output devices of all next hops (several for multipath).
    public var outputIndices: [Int32]
    /// RTA_PRIORITY (the metric) and the TOS: with the table and the
    /// destination, what the kernel tells routes apart by.
    public var metric: UInt32
    public var tos: UInt8

    public init(family: AddressFamily, destination: String, prefixLength: UInt8,
                table: UInt32 = Route.mainTable, outputIndices: [Int32], metric: UInt32 = 0, tos: UInt8 = 0) {
        self.family = family
        self.destination = destination
        self.prefixLength = prefixLength
        self.table = table
        self.outputIndices = outputIndices
        self.metric = metric
        self.tos = tos
    }

    public var key: Key {
        Key(family: family, table: table, destination: destination, prefixLength: prefixLength,
            metric: metric, tos: tos)
    }

    /// A route's identity in its table: a notification with the same key
    /// replaces it (or, in IPv6, adds next hops to it).
    public struct Key: Hashable, Sendable {
        public var family: AddressFamily
        public var table: UInt32
        /// The destination address without its prefix length.
        public var destination: String
        public var prefixLength: UInt8
        public var metric: UInt32
        public var tos: UInt8

        public init(family: AddressFamily, table: UInt32, destination: String, prefixLength: UInt8, metric: UInt32,
                    tos: UInt8) {
            self.family = family
            self.table = table
            // A default route is written "0.0.0.0", "0.0.0.0/0" or "::/0".
            self.destination = prefixLength == 0 ? "" : Self.address(destination)
            self.prefixLength = prefixLength
            self.metric = metric
            self.tos = tos
        }

        static func address(_ text: String) -> String {
            String(text.split(separator: "/", maxSplits: 1).first ?? "").lowercased()
        }
    }

    public static let mainTable: UInt32 = 254
    public static let localTable: UInt32 = 255

    public var isDefault: Bool { prefixLength == 0 }

    /// IPv6 link-local (fe80::/10) and multicast (ff00::/8) routes: every
    /// device that is up has them; no forwarded flow leaves through them.
    public var isLinkLocalOrMulticast: Bool { Self.isLinkLocalOrMulticast(family: family, destination: destination) }

    /// The same for a destination given as text (a route notification's).
    public static func isLinkLocalOrMulticast(family: AddressFamily, destination: String) -> Bool {
        guard family == .ipv6 else { return false }
        let lower = destination.lowercased()
        return lower.hasPrefix("fe8") || lower.hasPrefix("fe9") || lower.hasPrefix("fea") || lower.hasPrefix("feb")
            || lower.hasPrefix("ff")
    }
}

/// A snapshot of the host's links and routes.
public struct Topology: Hashable, Sendable, Codable {
    public private(set) var links: [Link]
    public var routes: [Route]
    private var byIndex: [Int32: Int]
    private var byName: [String: Int]

    public init(links: [Link], routes: [Route] = []) {
        self.links = links.sorted { $0.index < $1.index }
        self.routes = routes
        var byIndex: [Int32: Int] = [:]
        var byName: [String: Int] = [:]
        for (position, link) in self.links.enumerated() {
            byIndex[link.index] = position
            byName[link.name] = position
        }
        self.byIndex = byIndex
        self.byName = byName
    }

    enum CodingKeys: String, CodingKey { case links, routes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(links: try container.decode([Link].self, forKey: .links),
                  routes: try container.decode([Route].self, forKey: .routes))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(links, forKey: .links)
        try container.encode(routes, forKey: .routes)
    }

    public func link(index: Int32) -> Link? { byIndex[index].map { links[$0] } }
    public func link(named name: String) -> Link? { byName[name].map { links[$0] } }

    /// Devices enslaved to `master` (bridge ports, bond slaves).
    /// Adds or replaces one link, keeping the order and the indexes (the
    /// daemon does this for every RTM_NEWLINK, so it must not rebuild).
    public mutating func upsert(_ link: Link) {
        if let position = byIndex[link.index] {
            let old = links[position]
            links[position] = link
            if old.name != link.name {
                if byName[old.name] == position { byName[old.name] = nil }
                byName[link.name] = position
            }
        } else if let last = links.last, last.index > link.index {
            var updated = links
            updated.append(link)
            self = Topology(links: updated, routes: routes)
        } else {
            links.append(link)
            byIndex[link.index] = links.count - 1
            byName[link.name] = links.count - 1
        }
    }

    /// Removes one link (and the routes that only went through it).
    public mutating func remove(index: Int32) {
        guard byIndex[index] != nil else { return }
        let remaining = routes.compactMap { route -> Route? in
            guard route.outputIndices.contains(index) else { return route }
            var route = route
            route.outputIndices.removeAll { $0 == index }
            return route.outputIndices.isEmpty ? nil : route
        }
        self = Topology(links: links.filter { $0.index != index }, routes: remaining)
    }

    public func ports(of master: Link) -> [Link] {
        links.filter { $0.masterIndex == master.index }
    }

    /// Stacked devices whose lower device is `lower` (VLAN uppers, macvlans).
    public func uppers(of lower: Link) -> [Link] {
        links.filter { $0.lowerIndex == lower.index && $0.index != lower.index }
    }
}
