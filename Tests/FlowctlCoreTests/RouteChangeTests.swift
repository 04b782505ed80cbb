import FlowctlCore
import XCTest

/// The daemon's copy of the routes, kept from notifications alone: every
/// case either lands where a dump would, or asks for the dump.
final class RouteChangeTests: XCTestCase {
    func route(_ destination: String, _ devices: [Int32], family: AddressFamily = .ipv4, metric: UInt32 = 0,
               table: UInt32 = Route.mainTable) -> Route {
        let prefix = UInt8(destination.split(separator: "/").last.flatMap { UInt8($0) } ?? (family == .ipv4 ? 32 : 128))
        return Route(family: family, destination: destination, prefixLength: prefix, table: table,
                     outputIndices: devices, metric: metric)
    }

    func change(_ route: Route?, removed: Bool = false, replaces: Bool = false, appends: Bool = false,
                key: Route? = nil) -> RouteChange {
        let of = route ?? key!
        return RouteChange(family: of.family, destination: String(of.destination.split(separator: "/")[0]),
                           prefixLength: of.prefixLength, table: of.table, removed: removed, isUnicast: true,
                           metric: of.metric, route: route, replaces: replaces, appends: appends)
    }

    func testAddThenDeleteLeavesNothing() {
        var topology = Topology(links: [])
        let stor = route("198.18.99.0/24", [7])
        XCTAssertTrue(topology.apply(change(stor)))
        XCTAssertEqual(topology.routes, [stor])
        XCTAssertTrue(topology.apply(change(stor, removed: true)))
        XCTAssertEqual(topology.routes, [])
    }

    /// Notifications queued before the dump that already holds them.
    func testReplayedNotificationsLeaveWhatTheDumpSaw() {
        let stor = route("198.18.99.0/24", [7])
        var topology = Topology(links: [], routes: [stor])
        XCTAssertTrue(topology.apply(change(stor)))
        XCTAssertEqual(topology.routes, [stor], "added by key: no second copy")
        // Added and deleted before the dump: the dump has neither.
        var empty = Topology(links: [])
        XCTAssertTrue(empty.apply(change(stor)))
        XCTAssertTrue(empty.apply(change(stor, removed: true)))
        XCTAssertEqual(empty.routes, [])
    }

    func testReplaceMovesTheRouteAndUnreachableRemovesIt() {
        let old = route("0.0.0.0/0", [2])
        var topology = Topology(links: [], routes: [old])
        let moved = route("0.0.0.0/0", [3])
        XCTAssertTrue(topology.apply(change(moved, replaces: true)))
        XCTAssertEqual(topology.routes.map(\.outputIndices), [[3]])
        // `ip route replace unreachable default`: no devices any more.
        XCTAssertTrue(topology.apply(change(nil, replaces: true, key: moved)))
        XCTAssertEqual(topology.routes, [])
    }

    func testMetricKeepsRoutesApart() {
        let primary = route("198.18.99.0/24", [7], metric: 10)
        let backup = route("198.18.99.0/24", [8], metric: 20)
        var topology = Topology(links: [])
        XCTAssertTrue(topology.apply(change(primary)))
        XCTAssertTrue(topology.apply(change(backup)))
        XCTAssertTrue(topology.apply(change(primary, removed: true)))
        XCTAssertEqual(topology.routes, [backup])
    }

    /// IPv6 multipath: `ip -6 route append` announces the route with its
    /// next hops; deleting one next hop announces that one alone.
    func testIPv6NextHopsJoinAndLeaveOneByOne() {
        let first = route("2001:2:99::/64", [7], family: .ipv6)
        let both = route("2001:2:99::/64", [7, 8], family: .ipv6)
        let second = route("2001:2:99::/64", [8], family: .ipv6)
        var topology = Topology(links: [])
        XCTAssertTrue(topology.apply(change(first)))
        XCTAssertTrue(topology.apply(change(second, appends: true)))
        XCTAssertEqual(topology.routes.map(\.outputIndices), [[7, 8]], "joined, whether the append names one hop or all")
        XCTAssertTrue(topology.apply(change(both, appends: true)))
        XCTAssertEqual(topology.routes.map(\.outputIndices), [[7, 8]])
        XCTAssertTrue(topology.apply(change(first, removed: true)))
        XCTAssertEqual(topology.routes.map(\.outputIndices), [[8]])
        XCTAssertTrue(topology.apply(change(second, removed: true)))
        XCTAssertEqual(topology.routes, [])
    }

    /// After a dump, IPv4 may list two routes with one key (`ip route
    /// append`, checked in the lab); deleting one leaves the other.
    func testIPv4AppendedRoutesAreDeletedOneByOne() {
        let first = route("198.18.99.0/24", [7])
        let second = route("198.18.99.0/24", [8])
        var topology = Topology(links: [], routes: [first, second])
        XCTAssertTrue(topology.apply(change(second, removed: true)))
        XCTAssertEqual(topology.routes, [first])
    }

    func testWhatCannotBeSettledAsksForADump() {
        let existing = route("0.0.0.0/0", [2])
        var topology = Topology(links: [], routes: [existing])
        // IPv4 keeps an appended route beside the first, unused: which one a later delete removes is unknown.
        XCTAssertFalse(topology.apply(change(route("0.0.0.0/0", [3]), appends: true)))
        // A delete naming devices this copy does not hold for the key.
        XCTAssertFalse(topology.apply(change(route("0.0.0.0/0", [9]), removed: true)))
        // A delete of a device-less route where this copy has one with devices.
        XCTAssertFalse(topology.apply(change(nil, removed: true, key: existing)))
        XCTAssertEqual(topology.routes, [existing], "nothing changed on the way")
    }

    func testRoutesThatNeverCarryForwardedFlowsAreIgnored() {
        var topology = Topology(links: [])
        XCTAssertTrue(topology.apply(change(route("198.18.0.1/32", [7], table: Route.localTable))))
        XCTAssertTrue(topology.apply(change(route("fe80::/64", [7], family: .ipv6))))
        XCTAssertEqual(topology.routes, [])
        // A delete of something never counted changes nothing.
        XCTAssertTrue(topology.apply(change(route("198.18.5.0/24", [7]), removed: true)))
        XCTAssertEqual(topology.routes, [])
    }
}
