/// Watches the host's changes for the ones that can make an offloaded flow
/// wrong. Fed with every topology event before it is applied, with the
/// topology as it was and the devices flowctl currently serves.
public struct CoherenceWatch: Sendable {
    /// The devices flowctl's flows go through, from the current plan.
    public struct Served: Hashable, Sendable {
        /// Enabled bridges by name.
        public var bridges: Set<String> = []
        /// Bridges, their VLAN uppers, and the routed uplink devices (and
        /// what they resolve through): L3 devices whose neighbours and
        /// state the direct paths cache.
        public var l3Devices: Set<String> = []
        /// Real devices in the flowtable (the kernel tears their flows down
        /// when they go down or vanish).
        public var flowtableDevices: Set<String> = []

        public init() {}

        public init(plan: Plan) {
            bridges = Set(plan.bridges.map(\.name))
            l3Devices = Set(plan.bridges.flatMap(\.interfaces))
            for device in plan.devices {
                flowtableDevices.insert(device.name)
                for reason in device.reasons {
                    if case .uplink(_, let via, _, _) = reason {
                        l3Devices.insert(via ?? device.name)
                        l3Devices.insert(device.name)
                    }
                }
            }
        }

        public var isEmpty: Bool { bridges.isEmpty }
    }

    public struct NeighbourKey: Hashable, Sendable {
        public var index: Int32
        public var address: String
        public init(index: Int32, address: String) {
            self.index = index
            self.address = address
        }
    }

    private var portInfo: [Int32: BridgePortInfo] = [:]
    /// Ports seen joining a bridge since the watch started: their first
    /// AF_BRIDGE message is their starting point, not a change. Ports that
    /// were members before have no recorded starting point, so their first
    /// message counts as a change (it may be one).
    private var joined: Set<Int32> = []
    /// The last port of every MAC learned on a served bridge (kept after the
    /// FDB entry ages out: offloaded flows stop refreshing it).
    private var macPorts: [String: Int32] = [:]
    private var neighbours: [NeighbourKey: String] = [:]

    public init() {}

    /// Starting points from a dump (FDB and neighbours), so the first event
    /// after a start is compared with the truth.
    public mutating func seed(fdb: [(mac: String, port: Int32)], neighbours seeded: [(NeighbourKey, String)]) {
        for entry in fdb { macPorts[entry.mac] = entry.port }
        for (key, lladdr) in seeded { neighbours[key] = lladdr }
    }

    /// The causes `event` gives, judged against `topology` before the event.
    public mutating func causes(for event: TopologyEvent, topology: Topology, served: Served) -> [ReevaluationCause] {
        guard !served.isEmpty else { return [] }
        switch event {
        case .link(let after):
            guard let before = topology.link(index: after.index) else {
                // A device created as a port: its first bridge attributes are its starting point.
                if after.masterIndex != nil { joined.insert(after.index) }
                return []
            }
            return linkChanged(before: before, after: after, topology: topology, served: served)
        case .linkRemoved(let index, let name):
            portInfo[index] = nil
            joined.remove(index)
            for (key, _) in neighbours where key.index == index { neighbours[key] = nil }
            guard let before = topology.link(index: index) else { return [] }
            var causes: [ReevaluationCause] = []
            if let bridge = servedMaster(before, topology, served), before.isUp, !served.flowtableDevices.contains(name),
               mayCarryFlows(before, topology, served) {
                // A VLAN port whose lower device is in the flowtable: its flows stay keyed to the lower device.
                causes.append(.portLeft(port: name, bridge: bridge))
            } else if served.l3Devices.contains(name) {
                causes.append(.deviceDown(device: name))
            }
            return causes
        case .bridgePort(let index, let info):
            // A port that is down carries no flows (the kernel tore down
            // those of a flowtable device); its VLANs are remembered.
            guard let link = topology.link(index: index) else { return [] }
            guard link.isUp, let bridge = servedBridge(of: link, topology, served) else {
                portInfo[index] = info
                return []
            }
            let previous = portInfo[index]
            portInfo[index] = info
            if let previous {
                // VLANs changed, or STP stopped a port that is up and running
                // from forwarding. A port that starts forwarding had no flows
                // to make wrong; one disabled because it went down or lost
                // its carrier is handled by the kernel or leads nowhere.
                let stoppedForwarding = previous.state == BridgePortInfo.forwarding
                    && info.state != BridgePortInfo.forwarding && link.isRunning
                guard previous.vlans != info.vlans || stoppedForwarding else { return [] }
                return [.bridgePort(device: link.name, bridge: bridge, change: Self.change(from: previous, to: info))]
            }
            if joined.contains(index) { return [] }
            return [.bridgePort(device: link.name, bridge: bridge,
                                change: "bridge attributes changed (\(info.vlans?.description ?? "no VLAN information"), first seen)")]
        case .bridgeVLANChanged(let index):
            // A port being created or deleted announces its default VLAN; only
            // a port that is up and has its starting point can change.
            guard let link = topology.link(index: index), link.isUp,
                  let bridge = servedBridge(of: link, topology, served) else { return [] }
            if portInfo[index] == nil && joined.contains(index) { return [] }
            return [.bridgePort(device: link.name, bridge: bridge, change: "VLAN entries changed")]
        case .fdb(let mac, let port, let removed):
            guard !removed, let link = topology.link(index: port), let bridge = servedMaster(link, topology, served)
            else { return [] }
            let previous = macPorts[mac]
            macPorts[mac] = port
            guard let previous, previous != port else { return [] }
            let from = topology.link(index: previous)?.name ?? "ifindex \(previous)"
            return [.macMoved(mac: mac, bridge: bridge, from: from, to: link.name)]
        case .neighbour(let index, let address, let lladdr, let removed):
            let key = NeighbourKey(index: index, address: address)
            guard !removed, let lladdr else {
                if removed { neighbours[key] = nil }
                return []
            }
            let previous = neighbours[key]
            neighbours[key] = lladdr
            guard let previous, previous != lladdr, let link = topology.link(index: index),
                  served.l3Devices.contains(link.name) else { return [] }
            return [.neighbour(address: address, device: link.name, from: previous, to: lladdr)]
        case .route(let change):
            guard change.matters else { return [] }
            return [.route(change.description)]
        case .nexthopRemoved(let id):
            return [.route("nexthop object \(id) (deleted)")]
        case .lost:
            return []
        }
    }

    private mutating func linkChanged(before: Link, after: Link, topology: Topology, served: Served) -> [ReevaluationCause] {
        var causes: [ReevaluationCause] = []
        let beforeBridge = servedMaster(before, topology, served)
        if before.masterIndex != after.masterIndex {
            portInfo[after.index] = nil
            if after.masterIndex != nil { joined.insert(after.index) }
            // A port that is down when it leaves (a port being deleted goes
            // down first) has had its flows torn down or can carry none.
            if let beforeBridge, after.isUp, mayCarryFlows(before, topology, served) {
                causes.append(.portLeft(port: before.name, bridge: beforeBridge))
            }
        }
        let serves = beforeBridge != nil || served.l3Devices.contains(before.name)
            || served.flowtableDevices.contains(before.name)
        guard serves else { return causes }
        if before.mtu != after.mtu {
            causes.append(.mtuChanged(device: after.name, from: before.mtu, to: after.mtu))
        }
        // A real device in the flowtable going down: the kernel tears its
        // flows down itself (NETDEV_DOWN). Anything else is ours to do.
        // A port that never made it into the flowtable (one that lives for an
        // instant, say) carries no offloaded flows: nothing to do either.
        if before.isUp && !after.isUp && !served.flowtableDevices.contains(before.name)
            && (beforeBridge == nil || mayCarryFlows(before, topology, served)) {
            causes.append(.deviceDown(device: before.name))
        }
        return causes
    }

    /// Whether offloaded flows can be keyed to this port: it is in the
    /// flowtable, or stacked on a device that is (a VLAN port's lower device).
    private func mayCarryFlows(_ link: Link, _ topology: Topology, _ served: Served) -> Bool {
        if served.flowtableDevices.contains(link.name) { return true }
        guard link.kind == .vlan, let lowerIndex = link.lowerIndex, lowerIndex != link.index,
              let lower = topology.link(index: lowerIndex) else { return false }
        return mayCarryFlows(lower, topology, served)
    }

    /// The served bridge a bridge message is about: the bridge itself, or
    /// the bridge the port belongs to.
    private func servedBridge(of link: Link, _ topology: Topology, _ served: Served) -> String? {
        if link.kind == .bridge, served.bridges.contains(link.name) { return link.name }
        return servedMaster(link, topology, served)
    }

    private func servedMaster(_ link: Link, _ topology: Topology, _ served: Served) -> String? {
        guard let master = link.masterIndex, let bridge = topology.link(index: master),
              served.bridges.contains(bridge.name) else { return nil }
        return bridge.name
    }

    static func change(from old: BridgePortInfo, to new: BridgePortInfo) -> String {
        var parts: [String] = []
        if old.vlans != new.vlans {
            parts.append("\(old.vlans?.description ?? "no VLAN information") -> \(new.vlans?.description ?? "no VLAN information")")
        }
        if old.state != new.state { parts.append("STP \(old.stateName) -> \(new.stateName)") }
        return parts.joined(separator: ", ")
    }
}

/// A bridge port's (or a bridge's own) VLAN membership, as AF_BRIDGE
/// RTM_NEWLINK messages carry it (IFLA_AF_SPEC, IFLA_BRIDGE_VLAN_INFO).
public struct BridgeVLANs: Hashable, Sendable, Codable, CustomStringConvertible {
    public var vids: [UInt16]
    public var pvid: UInt16?
    public var untagged: [UInt16]

    public init(vids: [UInt16], pvid: UInt16?, untagged: [UInt16]) {
        self.vids = vids.sorted()
        self.pvid = pvid
        self.untagged = untagged.sorted()
    }

    public var description: String {
        guard !vids.isEmpty else { return "no VLAN" }
        return "VLAN " + vids.map { vid in
            var text = "\(vid)"
            if vid == pvid { text += " pvid" }
            if untagged.contains(vid) { text += " untagged" }
            return text
        }.joined(separator: ", ")
    }
}

/// What an AF_BRIDGE RTM_NEWLINK says about one port (or the bridge itself).
public struct BridgePortInfo: Hashable, Sendable, Codable {
    /// nil when the message carried no VLAN information.
    public var vlans: BridgeVLANs?
    /// IFLA_BRPORT_STATE (BR_STATE_*), nil for the bridge itself.
    public var state: UInt8?

    public init(vlans: BridgeVLANs?, state: UInt8?) {
        self.vlans = vlans
        self.state = state
    }

    static let stateNames = ["disabled", "listening", "learning", "forwarding", "blocking"]
    /// BR_STATE_FORWARDING.
    public static let forwarding: UInt8 = 3
    var stateName: String { state.map { Int($0) < Self.stateNames.count ? Self.stateNames[Int($0)] : "state \($0)" } ?? "-" }
}
