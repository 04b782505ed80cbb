/// Intent + Topology -> the desired ruleset, with the reason for every
/// device. Pure: no I/O, no root, deterministic output (sorted).

public enum FlowctlNames {
    public static let table = TableRef(family: .inet, name: "flowctl")
    public static let tableComment = "managed by flowctl; do not edit"
    public static let flowtable = "fastpath"
    public static let interfaceSet = "offload_ifaces"
    public static let forwardChain = "forward"
    /// Runs after every other forward chain (firewalld, libvirt, docker and
    /// iptables-nft use priorities around 0), so a flow is offloaded only
    /// once everything else accepted it. `status` and `plan` warn about any
    /// forward chain of another table at or above it.
    public static let forwardPriority: Int32 = 2_000_000_000
    public static let flowtablePriority: Int32 = 0
}

/// Why a device is in the flowtable.
public enum DeviceReason: Hashable, Sendable, Codable, CustomStringConvertible {
    /// A port of an enabled bridge; `via` names the port when the device is
    /// its real device underneath (a VLAN port's lower device).
    case port(bridge: String, via: String?)
    /// An uplink of an enabled bridge; `via` names the routed device it was
    /// resolved from (a VLAN sub-interface, an uplink bridge) when different;
    /// `route` the route that leads there ("default route", "route
    /// 198.18.99.0/24", "route 198.18.99.0/24 and 3 more"), nil for --uplink.
    case uplink(bridge: String, via: String?, configured: Bool, route: String? = nil)

    public var bridge: String {
        switch self {
        case .port(let bridge, _), .uplink(let bridge, _, _, _): bridge
        }
    }

    public var description: String {
        switch self {
        case .port(let bridge, let via):
            "port of \(bridge)" + (via.map { " (via \($0))" } ?? "")
        case .uplink(let bridge, let via, let configured, let route):
            "uplink of \(bridge)" + (via.map { " (via \($0))" } ?? "")
                + (configured ? " [--uplink]" : " [\(route ?? "default route")]")
        }
    }
}

public struct PlannedDevice: Hashable, Sendable, Codable {
    public var name: String
    public var kind: LinkKind
    public var hwTCOffload: Bool?
    public var reasons: [DeviceReason]
}

public struct PlannedBridge: Hashable, Sendable, Codable {
    public var name: String
    /// The bridge and its VLAN uppers: the L3 devices the forward rule matches.
    public var interfaces: [String]
    /// Real devices behind the bridge's ports.
    public var ports: [String]
    /// Real devices behind the uplinks.
    public var uplinks: [String]
    public var vlanFiltering: Bool?
    public var intent: BridgeIntent
    /// No route uses the bridge or its VLAN uppers (no address on them,
    /// nothing routed through them): its traffic is only switched, never
    /// reaches the forward hook, and gains nothing from a flowtable.
    /// Optional: absent from older daemons' answers.
    public var layer2Only: Bool?
    /// The pattern that enabled it (`virbr*`); nil for an exact name.
    public var pattern: String?
}

public struct OffloadDecision: Hashable, Sendable, Codable, CustomStringConvertible {
    public var hardware: Bool
    public var reason: String
    public var description: String { (hardware ? "hardware" : "software") + " (\(reason))" }
}

/// The kernel refused a flowtable with `flags offload` for these devices
/// (a NIC that offers hw-tc-offload but cannot take flowtable flows:
/// EOPNOTSUPP). In auto mode the planner plans software, with `reason`,
/// while every device it plans is among `devices`; a device beyond them
/// tries hardware again. Kept by the daemon across passes, so hardware is
/// not tried (and refused) on every reconcile.
public struct HardwareRefusal: Hashable, Sendable, Codable {
    /// Every device the refused flowtable would have listed, sorted.
    public var devices: [String]
    /// For the plan: "the kernel refused hardware offload on eth0, eth1: Operation not supported".
    public var reason: String

    public init(devices: [String], reason: String) {
        self.devices = Array(Set(devices)).sorted()
        self.reason = reason
    }

    /// `refused`: the devices of the refused request; `why`: the kernel's text.
    public init(devices: [String], refused: [String], why: String) {
        self.init(devices: devices,
                  reason: "the kernel refused hardware offload on \(Planner.shortList(refused.sorted())): \(why)")
    }

    /// True when `planned` brings no device the refusal has not seen.
    public func covers(_ planned: [String]) -> Bool { Set(planned).isSubset(of: devices) }
}

public struct Plan: Hashable, Sendable, Codable {
    /// nil when no bridge is enabled: flowctl's table should not exist.
    public var desired: DesiredRuleset?
    public var bridges: [PlannedBridge]
    public var devices: [PlannedDevice]
    public var offload: OffloadDecision?
    public var warnings: [String]
}

public enum PlanError: Error, Hashable, Sendable, CustomStringConvertible {
    case bridgeNotFound(String)
    case notABridge(String, LinkKind)
    case uplinkNotFound(bridge: String, uplink: String)
    case uplinkUnusable(bridge: String, uplink: String, why: String)
    case hardwareOffloadUnsupported(devices: [String])
    case invalidName(String)

    public var description: String {
        switch self {
        case .bridgeNotFound(let name):
            "no such device: \(name)"
        case .notABridge(let name, let kind):
            "\(name) is not a bridge (it is a \(kind) device)"
        case .uplinkNotFound(let bridge, let uplink):
            "uplink \(uplink) of \(bridge): no such device"
        case .uplinkUnusable(let bridge, let uplink, let why):
            "uplink \(uplink) of \(bridge) cannot be used: \(why)"
        case .hardwareOffloadUnsupported(let devices):
            "--hw-offload on: these devices lack hw-tc-offload: \(devices.joined(separator: ", "))"
        case .invalidName(let name):
            "invalid interface name \(name.debugDescription) (1 to 15 bytes, no '/', ':' or white space)"
        }
    }
}

public struct Planner: Sendable {
    public init() {}

    /// Linux interface names: 1...15 bytes, no '/', ':', NUL or white space.
    public static func isValidInterfaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), name != ".", name != ".." else { return false }
        return !bytes.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7f }
    }

    /// Plans `intent` against `topology`. A bridge named in `required` must
    /// exist and be usable (the one a command names); any other enabled
    /// bridge that is missing or broken right now is left out with a
    /// warning, so one vanished bridge never blocks the others.
    /// `hardwareRefusal`: what the kernel refused before (see HardwareRefusal).
    public func plan(intent: Intent, topology: Topology, required: Set<String> = [],
                     hardwareRefusal: HardwareRefusal? = nil) throws(PlanError) -> Plan {
        guard !intent.isEmpty else {
            return Plan(desired: nil, bridges: [], devices: [], offload: nil, warnings: [])
        }
        var reasons: [(device: String, reason: DeviceReason)] = []
        var bridges: [PlannedBridge] = []
        var interfaces: Set<String> = []
        var warnings: [String] = []
        let routed = routedDevices(in: topology)

        // Exact names first; then each pattern takes the bridges that match
        // it and no earlier key took.
        var targets: [(name: String, options: BridgeIntent, pattern: String?)] = []
        var claimed: Set<String> = []
        for key in intent.bridgeNames where !Intent.isPattern(key) {
            targets.append((key, intent.bridges[key]!, nil))
            claimed.insert(key)
        }
        for key in intent.bridgeNames where Intent.isPattern(key) {
            let matches = topology.links.filter {
                $0.kind == .bridge && !claimed.contains($0.name) && Intent.matches(key, $0.name)
            }.map(\.name).sorted()
            if matches.isEmpty {
                warnings.append("pattern \(key) matches no bridge yet: a bridge created later that matches is enabled with its ports (by the daemon at once, otherwise by the next flowctl command)")
            }
            for name in matches {
                targets.append((name, intent.bridges[key]!, key))
                claimed.insert(name)
            }
        }

        for (name, options, pattern) in targets {
            do {
                var planned = try planBridge(name, options: options, topology: topology,
                                             routed: routed, warnings: &warnings)
                planned.bridge.pattern = pattern
                interfaces.formUnion(planned.bridge.interfaces)
                reasons.append(contentsOf: planned.reasons.map { (device: $0.0, reason: $0.1) })
                bridges.append(planned.bridge)
            } catch {
                if required.contains(name) { throw error }
                warnings.append("\(error); its fast path is left out until that is fixed")
            }
        }

        // One sort by name puts each device's reasons side by side (cheaper
        // than a dictionary of arrays at 1,000 ports).
        reasons.sort { $0.device < $1.device }
        var devices: [PlannedDevice] = []
        devices.reserveCapacity(reasons.count)
        var start = reasons.startIndex
        while start < reasons.endIndex {
            let device = reasons[start].device
            var end = start + 1
            while end < reasons.endIndex, reasons[end].device == device { end += 1 }
            let found = reasons[start..<end].map(\.reason)
            let link = topology.link(named: device)!
            devices.append(PlannedDevice(name: device, kind: link.kind, hwTCOffload: link.hwTCOffload,
                                         reasons: found.count == 1 ? found
                                             : Array(Set(found)).sorted { $0.description < $1.description }))
            start = end
        }
        let offload = try decideOffload(intent: intent, devices: devices, refusal: hardwareRefusal)

        let desired = DesiredRuleset(
            table: TableSpec(ref: FlowctlNames.table, comment: FlowctlNames.tableComment),
            interfaceSet: InterfaceSetSpec(name: FlowctlNames.interfaceSet, elements: Array(interfaces)),
            flowtable: FlowtableSpec(name: FlowctlNames.flowtable, priority: FlowctlNames.flowtablePriority,
                                     devices: devices.map(\.name), counter: true,
                                     hardwareOffload: offload.hardware),
            chain: ChainSpec(name: FlowctlNames.forwardChain, hook: .forward,
                             priority: FlowctlNames.forwardPriority),
            rules: [OffloadRule.Direction.input, .output].flatMap { direction in
                [L4Protocol.tcp, .udp].map {
                    OffloadRule(chain: FlowctlNames.forwardChain, direction: direction, l4proto: $0,
                                interfaceSet: FlowctlNames.interfaceSet, flowtable: FlowctlNames.flowtable)
                }
            })
        return Plan(desired: desired, bridges: bridges, devices: devices, offload: offload, warnings: warnings)
    }

    private func planBridge(_ name: String, options: BridgeIntent, topology: Topology, routed: [RoutedDevice],
                            warnings: inout [String])
        throws(PlanError) -> (bridge: PlannedBridge, reasons: [(String, DeviceReason)])
    {
        guard Self.isValidInterfaceName(name) else { throw .invalidName(name) }
        guard let bridge = topology.link(named: name) else { throw .bridgeNotFound(name) }
        guard bridge.kind == .bridge else { throw .notABridge(name, bridge.kind) }
        var reasons: [(String, DeviceReason)] = []

        // L3 devices of this bridge: itself and the VLAN uppers stacked on it.
        let scope = [bridge] + vlanUppers(of: bridge, in: topology)
        let scopeIndices = Set(scope.map(\.index))

        var ports: [String] = []
        for port in topology.ports(of: bridge) {
            for real in realDevices(of: port, in: topology) {
                ports.append(real.name)
                reasons.append((real.name, .port(bridge: name, via: real.index == port.index ? nil : port.name)))
            }
        }
        if ports.isEmpty {
            warnings.append("\(name) has no ports yet: nothing to offload until a VM or container attaches")
        }
        if bridge.addressFixed == false {
            warnings.append("\(name) has no fixed MAC address: it takes its lowest port's, so a port coming or going can change it, which ends offloaded flows and strands the guests' ARP entries; fix one (ip link set \(name) address ..., as libvirt does)")
        }

        let configured = !options.uplinks.isEmpty
        let uplinkDevices: [Link]
        if configured {
            uplinkDevices = try options.uplinks.map { (uplink: String) throws(PlanError) -> Link in
                guard Self.isValidInterfaceName(uplink) else { throw .invalidName(uplink) }
                guard let link = topology.link(named: uplink) else {
                    throw .uplinkNotFound(bridge: name, uplink: uplink)
                }
                if link.kind == .loopback {
                    throw .uplinkUnusable(bridge: name, uplink: uplink, why: "it is the loopback device")
                }
                return link
            }
        } else {
            uplinkDevices = routed.map(\.link)
            if !routed.contains(where: { $0.isDefault }) {
                warnings.append("no default route and no --uplink for \(name): only traffic to the routes' devices and between enabled bridges is offloaded")
            }
        }
        let routeOf = Dictionary(routed.map { ($0.link.index, $0.route) }, uniquingKeysWith: { first, _ in first })
        var uplinks: [String] = []
        // The host's own address on this very bridge: its ports are already listed.
        for uplink in uplinkDevices where !scopeIndices.contains(uplink.index) && uplink.kind != .loopback
            && (configured || !options.excludes(uplink.name))
        {
            let real = realDevices(of: uplink, in: topology)
            if real.isEmpty && (configured || routed.contains { $0.link.index == uplink.index && $0.isDefault }) {
                warnings.append("uplink \(uplink.name) of \(name) has no real device under it yet")
            }
            for device in real where configured || !options.excludes(device.name) {
                uplinks.append(device.name)
                reasons.append((device.name, .uplink(bridge: name, via: device.index == uplink.index ? nil : uplink.name,
                                                      configured: configured,
                                                      route: configured ? nil : routeOf[uplink.index])))
            }
        }
        // Honest gain: a bridge nothing is routed through only switches.
        let layer2Only = !topology.routes.contains { route in
            route.table != Route.localTable && !route.isLinkLocalOrMulticast
                && route.outputIndices.contains(where: scopeIndices.contains)
        }
        if layer2Only {
            warnings.append("\(name) only switches at layer 2 (no address or route on it or its VLAN uppers): bridged traffic never reaches the forward hook, so its flows gain nothing from the fast path; traffic routed through the host (an address on \(name), NAT) would")
        }
        var planned = PlannedBridge(
            name: name, interfaces: scope.map(\.name).sorted(), ports: ports.sortedUnique(),
            uplinks: uplinks.sortedUnique(), vlanFiltering: bridge.vlanFiltering, intent: options)
        planned.layer2Only = layer2Only
        return (planned, reasons)
    }

    /// VLAN devices stacked on `link`, recursively (802.1ad over 802.1Q too).
    func vlanUppers(of link: Link, in topology: Topology) -> [Link] {
        topology.uppers(of: link).filter { $0.kind == .vlan }.flatMap { [$0] + vlanUppers(of: $0, in: topology) }
    }

    /// The devices whose ingress a flowtable must hook to see `link`'s
    /// traffic: a VLAN resolves to its lower device, a bridge to its ports,
    /// everything else is itself. The kernel's forward-path walk
    /// (dev_fill_forward_path) handles the VLAN and bridge layers above them.
    func realDevices(of link: Link, in topology: Topology, seen: Set<Int32> = []) -> [Link] {
        switch link.kind {
        case .vlan, .bridge, .loopback: break
        default: return [link]  // the common case: a port is its own real device
        }
        if seen.contains(link.index) { return [] }
        let seen = seen.union([link.index])
        switch link.kind {
        case .vlan:
            guard let lowerIndex = link.lowerIndex, let lower = topology.link(index: lowerIndex) else { return [] }
            return realDevices(of: lower, in: topology, seen: seen)
        case .bridge:
            return topology.ports(of: link).flatMap { realDevices(of: $0, in: topology, seen: seen) }
        case .loopback:
            return []
        default:
            return [link]
        }
    }

    /// A device traffic can be routed out of, and the route that says so.
    struct RoutedDevice {
        var link: Link
        /// "default route", "route 198.18.99.0/24", "route 198.18.99.0/24 and 3 more".
        var route: String
        var isDefault: Bool
    }

    /// The output devices of every unicast route (the decoder keeps no
    /// local, broadcast, blackhole or unreachable ones) in every table but
    /// local — a superset of the tables `ip rule` selects; a device in the
    /// flowtable that carries no flow costs one lookup per packet, a missing
    /// one costs its flows the fast path — IPv4 and IPv6, every nexthop of a
    /// multipath route. Not IPv6 link-local or multicast routes: every
    /// device has them. Default routes first, then by name. Linear in routes.
    func routedDevices(in topology: Topology) -> [RoutedDevice] {
        // Per device: default routes, other routes, and the least of those
        // (for the reason text); updated in place, one pass over the routes.
        var found: [Int32: (defaults: Int, specific: Int, first: String?)] = [:]
        for route in topology.routes where route.table != Route.localTable && !route.isLinkLocalOrMulticast {
            // A multipath route may name a device twice.
            let indices = route.outputIndices.count > 1 ? Array(Set(route.outputIndices)) : route.outputIndices
            for index in indices {
                if route.isDefault {
                    found[index, default: (0, 0, nil)].defaults += 1
                    continue
                }
                found[index, default: (0, 0, nil)].specific += 1
                if let first = found[index]!.first, first <= route.destination { continue }
                found[index]!.first = route.destination
            }
        }
        return found.compactMap { index, entry -> RoutedDevice? in
            guard let link = topology.link(index: index) else { return nil }
            let text: String
            if entry.defaults > 0 {
                text = "default route" + (entry.specific == 0 ? "" : " and \(entry.specific) more")
            } else {
                text = "route \(entry.first!)" + (entry.specific > 1 ? " and \(entry.specific - 1) more" : "")
            }
            return RoutedDevice(link: link, route: text, isDefault: entry.defaults > 0)
        }.sorted { ($0.isDefault ? 0 : 1, $0.link.name) < ($1.isDefault ? 0 : 1, $1.link.name) }
    }

    /// `--hw-offload on` wants hardware or an error; auto takes hardware when
    /// every device claims hw-tc-offload and the kernel has not refused it
    /// for these devices already.
    func decideOffload(intent: Intent, devices: [PlannedDevice], refusal: HardwareRefusal? = nil)
        throws(PlanError) -> OffloadDecision
    {
        let modes = Set(intent.bridges.values.map(\.hwOffload))
        let lacking = devices.filter { $0.hwTCOffload != true }.map(\.name)
        if modes.contains(.on) {
            if !lacking.isEmpty { throw .hardwareOffloadUnsupported(devices: lacking) }
            if devices.isEmpty { return OffloadDecision(hardware: false, reason: "no devices yet") }
            if modes.contains(.off) {
                return OffloadDecision(hardware: false, reason: "--hw-offload off on another enabled bridge")
            }
            return OffloadDecision(hardware: true, reason: "--hw-offload on")
        }
        if modes.contains(.off) { return OffloadDecision(hardware: false, reason: "--hw-offload off") }
        if devices.isEmpty { return OffloadDecision(hardware: false, reason: "no devices yet") }
        if !lacking.isEmpty {
            return OffloadDecision(hardware: false, reason: "hw-tc-offload missing on \(Self.shortList(lacking))")
        }
        if let refusal, refusal.covers(devices.map(\.name)) {
            return OffloadDecision(hardware: false, reason: refusal.reason)
        }
        return OffloadDecision(hardware: true, reason: "every device has hw-tc-offload")
    }

    /// Up to three names, for one-line reasons.
    static func shortList(_ names: [String]) -> String {
        names.prefix(3).joined(separator: ", ") + (names.count > 3 ? ", ..." : "")
    }
}
