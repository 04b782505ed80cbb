/// Route notifications (RTM_NEWROUTE / RTM_DELROUTE) as values, and how
/// the daemon keeps its copy of the routes from them instead of dumping
/// every table on each one.

/// A route change as the kernel announced it.
public struct RouteChange: Hashable, Sendable, Codable, CustomStringConvertible {
    public var family: AddressFamily
    public var destination: String
    public var prefixLength: UInt8
    public var table: UInt32
    public var removed: Bool
    /// Local, broadcast, multicast and such: not forwarding paths.
    public var isUnicast: Bool
    public var metric: UInt32
    public var tos: UInt8
    /// The route with its output devices, as a dump would list it; nil when
    /// it leads through no device (blackhole, unreachable, prohibit).
    public var route: Route?
    /// NLM_F_REPLACE: it replaced the route with the same key.
    public var replaces: Bool
    /// NLM_F_APPEND: it was added beside the routes with the same key
    /// (IPv6: next hops joining a multipath route).
    public var appends: Bool

    public init(family: AddressFamily, destination: String, prefixLength: UInt8, table: UInt32, removed: Bool,
                isUnicast: Bool, metric: UInt32 = 0, tos: UInt8 = 0, route: Route? = nil, replaces: Bool = false,
                appends: Bool = false) {
        self.family = family
        self.destination = destination
        self.prefixLength = prefixLength
        self.table = table
        self.removed = removed
        self.isUnicast = isUnicast
        self.metric = metric
        self.tos = tos
        self.route = route
        self.replaces = replaces
        self.appends = appends
    }

    public var isDefault: Bool { prefixLength == 0 }

    public var key: Route.Key {
        Route.Key(family: family, table: table, destination: destination, prefixLength: prefixLength, metric: metric,
                  tos: tos)
    }

    /// Whether forwarded flows can depend on it: not the local table, not
    /// IPv6 link-local or multicast (every device that comes up adds those).
    public var matters: Bool {
        table != Route.localTable && isUnicast && !Route.isLinkLocalOrMulticast(family: family, destination: destination)
    }

    public var description: String {
        "\(destination)/\(prefixLength)" + (table == Route.mainTable ? "" : " table \(table)") + (removed ? " (deleted)" : "")
    }
}

extension Topology {
    /// Applies one route notification to `routes`. Returns false when the
    /// notification cannot be applied with certainty and the routes must be
    /// read again: an IPv4 route appended beside one with the same key (the
    /// kernel keeps both, one unused), a deletion that names next hops this
    /// copy does not have, a deleted route without devices where this copy
    /// has one. Replayed notifications (those queued before a dump that
    /// already holds them) leave the same result: adding is by key, deleting
    /// removes only the next hops the notification names.
    public mutating func apply(_ change: RouteChange) -> Bool {
        guard change.matters else { return true }
        let key = change.key
        if change.removed {
            // IPv4 may hold several routes with one key (`ip route append`):
            // the one with the deleted devices is meant.
            let named = Set(change.route?.outputIndices ?? [])
            let stored = routes.firstIndex { $0.key == key && $0.outputIndices.contains(where: named.contains) }
                ?? routes.firstIndex { $0.key == key }
            guard let stored else { return true }
            guard let route = change.route else { return false }
            let gone = Set(route.outputIndices)
            let kept = routes[stored].outputIndices.filter { !gone.contains($0) }
            // Another route with this key was deleted: this copy is not the kernel's.
            if kept.count == routes[stored].outputIndices.count { return false }
            // IPv6 announces each deleted next hop of a multipath route on its own.
            if kept.isEmpty { routes.remove(at: stored) } else { routes[stored].outputIndices = kept }
            return true
        }
        let stored = routes.firstIndex { $0.key == key }
        guard var route = change.route else {
            // Replaced by a route that leads nowhere (unreachable, blackhole).
            if let stored, change.replaces { routes.remove(at: stored) }
            return true
        }
        guard let stored else {
            routes.append(route)
            return true
        }
        if change.appends {
            // IPv6 announces the whole multipath route; IPv4 keeps an unused alias.
            guard change.family == .ipv6 else { return false }
            var joined = routes[stored].outputIndices
            for index in route.outputIndices where !joined.contains(index) { joined.append(index) }
            route.outputIndices = joined
        }
        routes[stored] = route
        return true
    }
}
