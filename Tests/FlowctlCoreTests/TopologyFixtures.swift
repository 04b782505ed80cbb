import FlowctlCore

/// Builds topologies the way a hypervisor looks, by name.
struct TopologyBuilder {
    private(set) var links: [Link] = [Link(index: 1, name: "lo", kind: .loopback)]
    private(set) var routes: [Route] = []

    func index(_ name: String) -> Int32 {
        links.first { $0.name == name }!.index
    }

    @discardableResult
    mutating func add(_ name: String, _ kind: LinkKind, master: String? = nil, lower: String? = nil,
                      vlan: UInt16? = nil, hw: Bool? = false) -> Int32 {
        let index = Int32(links.count + 1)
        links.append(Link(index: index, name: name, kind: kind, masterIndex: master.map(self.index),
                          lowerIndex: lower.map(self.index), vlanID: vlan, hwTCOffload: hw,
                          vlanFiltering: kind == .bridge ? false : nil))
        return index
    }

    mutating func setMaster(_ name: String, _ master: String?) {
        let position = links.firstIndex { $0.name == name }!
        links[position].masterIndex = master.map(index)
    }

    mutating func remove(_ name: String) {
        links.removeAll { $0.name == name }
    }

    mutating func defaultRoute(_ family: AddressFamily = .ipv4, via devices: String...) {
        routes.append(Route(family: family, destination: family == .ipv4 ? "0.0.0.0/0" : "::/0",
                            prefixLength: 0, outputIndices: devices.map(index)))
    }

    /// A specific route (a bridge's own subnet, a storage network ...), in `table`.
    mutating func route(_ destination: String, via devices: String..., table: UInt32 = Route.mainTable) {
        let family: AddressFamily = destination.contains(":") ? .ipv6 : .ipv4
        let prefix = UInt8(destination.split(separator: "/").last.flatMap { UInt8($0) } ?? 32)
        routes.append(Route(family: family, destination: destination, prefixLength: prefix, table: table,
                            outputIndices: devices.map(index)))
    }

    var topology: Topology { Topology(links: links, routes: routes) }
}
