import FlowctlCore
import FlowctlTesting
import XCTest

/// Which host changes call for a re-evaluation, how bursts coalesce, and
/// what `flowctl reevaluate` may name.
final class CoherenceTests: XCTestCase {
    /// br0 (enabled) with ports vnet1, vnet2 and VLAN upper br0.10; eth0 the uplink.
    func host() -> (Topology, CoherenceWatch.Served) {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.add("vnet2", .tun, master: "br0")
        t.add("br0.10", .vlan, lower: "br0", vlan: 10)
        t.add("other0", .bridge)
        t.add("tap9", .tun, master: "other0")
        t.defaultRoute(via: "eth0")
        let plan = try! Planner().plan(intent: Intent(bridges: ["br0": BridgeIntent()]), topology: t.topology)
        return (t.topology, CoherenceWatch.Served(plan: plan))
    }

    let vlan10 = BridgePortInfo(vlans: BridgeVLANs(vids: [10], pvid: 10, untagged: [10]), state: 3)
    let vlan11 = BridgePortInfo(vlans: BridgeVLANs(vids: [11], pvid: 11, untagged: [11]), state: 3)

    func testServedDevicesComeFromThePlan() {
        let (_, served) = host()
        XCTAssertEqual(served.bridges, ["br0"])
        XCTAssertEqual(served.l3Devices, ["br0", "br0.10", "eth0"])
        XCTAssertEqual(served.flowtableDevices, ["eth0", "vnet1", "vnet2"])
    }

    func testPortVLANChangeIsACauseWithItsDetail() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        let vnet1 = topology.link(named: "vnet1")!.index
        // A port that was a member before the watch started: its first message may be a change.
        XCTAssertEqual(watch.causes(for: .bridgePort(index: vnet1, vlan10), topology: topology, served: served).count, 1)
        XCTAssertEqual(watch.causes(for: .bridgePort(index: vnet1, vlan10), topology: topology, served: served), [],
                       "the same attributes again are no change")
        let causes = watch.causes(for: .bridgePort(index: vnet1, vlan11), topology: topology, served: served)
        XCTAssertEqual(causes, [.bridgePort(device: "vnet1", bridge: "br0",
                                            change: "VLAN 10 pvid untagged -> VLAN 11 pvid untagged")])
        XCTAssertEqual(causes.first?.kind, "bridge_port")
    }

    func testANewPortsFirstAttributesAreNoChange() {
        var (topology, served) = host()
        var watch = CoherenceWatch()
        let tap9 = topology.link(named: "tap9")!
        var joined = tap9
        joined.masterIndex = topology.link(named: "br0")!.index
        XCTAssertEqual(watch.causes(for: .link(joined), topology: topology, served: served), [],
                       "joining from an unserved bridge is no cause")
        topology.apply(.link(joined))
        XCTAssertEqual(watch.causes(for: .bridgePort(index: tap9.index, vlan10), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .bridgeVLANChanged(index: tap9.index), topology: topology, served: served).count, 1,
                       "once its starting point is known, a VLAN notification is a change")
        var down = joined
        down.isUp = false
        topology.apply(.link(down))
        XCTAssertEqual(watch.causes(for: .bridgeVLANChanged(index: tap9.index), topology: topology, served: served), [],
                       "a port going away announces its VLANs gone: no change to its (torn down) flows")
    }

    func testOnlyAPortThatStopsForwardingIsAnSTPCause() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        let vnet1 = topology.link(named: "vnet1")!.index
        var disabled = vlan10
        disabled.state = 0
        _ = watch.causes(for: .bridgePort(index: vnet1, disabled), topology: topology, served: served)
        XCTAssertEqual(watch.causes(for: .bridgePort(index: vnet1, vlan10), topology: topology, served: served), [],
                       "a port that starts forwarding had no flows")
        var blocking = vlan10
        blocking.state = 4
        XCTAssertEqual(watch.causes(for: .bridgePort(index: vnet1, blocking), topology: topology, served: served),
                       [.bridgePort(device: "vnet1", bridge: "br0", change: "STP forwarding -> blocking")])
        // Going down (a port being deleted, a VM's peer gone): the kernel's business.
        _ = watch.causes(for: .bridgePort(index: vnet1, vlan10), topology: topology, served: served)
        var down = topology
        var link = topology.link(named: "vnet1")!
        link.isUp = false
        down.apply(.link(link))
        XCTAssertEqual(watch.causes(for: .bridgePort(index: vnet1, disabled), topology: down, served: served), [])
    }

    func testAPortCreatedWithItsMasterHasNoChangeAtFirst() {
        var (topology, served) = host()
        var watch = CoherenceWatch()
        let vnet9 = Link(index: 50, name: "vnet9", kind: .tun, masterIndex: topology.link(named: "br0")!.index)
        XCTAssertEqual(watch.causes(for: .link(vnet9), topology: topology, served: served), [])
        topology.apply(.link(vnet9))
        XCTAssertEqual(watch.causes(for: .bridgePort(index: 50, vlan10), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .bridgePort(index: 50, vlan11), topology: topology, served: served).count, 1)
    }

    func testUnservedBridgesAreIgnored() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        let tap9 = topology.link(named: "tap9")!.index
        XCTAssertEqual(watch.causes(for: .bridgePort(index: tap9, vlan10), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .bridgePort(index: tap9, vlan11), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .fdb(mac: "02:00:00:00:00:09", port: tap9, removed: false),
                                    topology: topology, served: served), [])
    }

    func testMACMovingToAnotherPortIsACauseEvenAfterItAgedOut() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        let vnet1 = topology.link(named: "vnet1")!.index, vnet2 = topology.link(named: "vnet2")!.index
        watch.seed(fdb: [("02:00:00:00:10:01", vnet1)], neighbours: [])
        XCTAssertEqual(watch.causes(for: .fdb(mac: "02:00:00:00:10:01", port: vnet1, removed: true),
                                    topology: topology, served: served), [], "ageing out is no cause")
        XCTAssertEqual(watch.causes(for: .fdb(mac: "02:00:00:00:10:01", port: vnet2, removed: false),
                                    topology: topology, served: served),
                       [.macMoved(mac: "02:00:00:00:10:01", bridge: "br0", from: "vnet1", to: "vnet2")])
        XCTAssertEqual(watch.causes(for: .fdb(mac: "02:00:00:00:10:07", port: vnet2, removed: false),
                                    topology: topology, served: served), [], "a new MAC is no cause")
    }

    func testNeighbourAddressChangeOnAServedDevice() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        let upper = topology.link(named: "br0.10")!.index
        let key = CoherenceWatch.NeighbourKey(index: upper, address: "198.18.10.2")
        watch.seed(fdb: [], neighbours: [(key, "02:00:00:00:10:01")])
        XCTAssertEqual(watch.causes(for: .neighbour(index: upper, address: "198.18.10.2", lladdr: "02:00:00:00:10:01",
                                                    removed: false), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .neighbour(index: upper, address: "198.18.10.2", lladdr: "02:00:00:00:10:03",
                                                    removed: false), topology: topology, served: served),
                       [.neighbour(address: "198.18.10.2", device: "br0.10", from: "02:00:00:00:10:01",
                                   to: "02:00:00:00:10:03")])
    }

    func testLinkChanges() {
        let (topology, served) = host()
        var watch = CoherenceWatch()
        var vnet1 = topology.link(named: "vnet1")!
        vnet1.mtu = 9000
        XCTAssertEqual(watch.causes(for: .link(vnet1), topology: topology, served: served),
                       [.mtuChanged(device: "vnet1", from: 1500, to: 9000)])
        var left = topology.link(named: "vnet2")!
        left.masterIndex = nil
        XCTAssertEqual(watch.causes(for: .link(left), topology: topology, served: served),
                       [.portLeft(port: "vnet2", bridge: "br0")])
        var down = topology.link(named: "vnet2")!
        down.isUp = false
        XCTAssertEqual(watch.causes(for: .link(down), topology: topology, served: served), [],
                       "a flowtable device going down: the kernel tears its flows down")
        var upper = topology.link(named: "br0.10")!
        upper.isUp = false
        XCTAssertEqual(watch.causes(for: .link(upper), topology: topology, served: served),
                       [.deviceDown(device: "br0.10")], "flows are keyed to the real devices, not the VLAN upper")
    }

    /// A port that never reached the flowtable (one that lived for an
    /// instant between two passes) carries no offloaded flows: its going
    /// down, leaving or vanishing calls for nothing. A VLAN port over a
    /// flowtable device does (its flows are keyed to the lower device).
    func testPortsThatNeverReachedTheFlowtableCallForNothing() {
        var (topology, served) = host()
        var watch = CoherenceWatch()
        let instant = Link(index: 90, name: "i1", kind: .veth, masterIndex: topology.link(named: "br0")!.index)
        topology.upsert(instant)
        var down = instant
        down.isUp = false
        XCTAssertEqual(watch.causes(for: .link(down), topology: topology, served: served), [])
        var left = instant
        left.masterIndex = nil
        XCTAssertEqual(watch.causes(for: .link(left), topology: topology, served: served), [])
        XCTAssertEqual(watch.causes(for: .linkRemoved(index: 90, name: "i1"), topology: topology, served: served), [])

        let vlanPort = Link(index: 91, name: "eth0.5", kind: .vlan, masterIndex: topology.link(named: "br0")!.index,
                            lowerIndex: topology.link(named: "eth0")!.index, vlanID: 5)
        topology.upsert(vlanPort)
        served.flowtableDevices.insert("eth0")
        XCTAssertEqual(watch.causes(for: .linkRemoved(index: 91, name: "eth0.5"), topology: topology, served: served),
                       [.portLeft(port: "eth0.5", bridge: "br0")])
    }

    func testRoutesThatMatter() {
        let change = { (destination: String, prefix: UInt8, table: UInt32, family: AddressFamily) in
            RouteChange(family: family, destination: destination, prefixLength: prefix, table: table, removed: false,
                        isUnicast: true)
        }
        XCTAssertTrue(change("198.18.99.0", 24, Route.mainTable, .ipv4).matters)
        XCTAssertFalse(change("198.18.10.1", 32, Route.localTable, .ipv4).matters)
        XCTAssertFalse(change("fe80::", 64, Route.mainTable, .ipv6).matters)
        XCTAssertFalse(change("ff00::", 8, Route.mainTable, .ipv6).matters)
        XCTAssertTrue(change("2001:2:0:99::", 64, 100, .ipv6).matters)
        XCTAssertEqual(change("198.18.99.0", 24, 100, .ipv4).description, "198.18.99.0/24 table 100")
    }

    func testStormIsCoalescedAndRateLimited() {
        var scheduler = ReevaluationScheduler(settings: .init(coalesce: .milliseconds(20), minInterval: .milliseconds(250)))
        let start = ContinuousClock.now
        XCTAssertNil(scheduler.due())
        var runs = 0
        // 100 commits in 2 s, the loop checking every millisecond.
        for ms in 0...3000 {
            let now = start + .milliseconds(ms)
            if ms < 2000, ms % 20 == 0 {
                scheduler.note([.rulesetCommit(pid: 7, tables: ["inet t\(ms)"])], at: now)
            }
            if scheduler.ready(now: now), let taken = scheduler.take(now: now) {
                XCTAssertFalse(taken.causes.isEmpty)
                runs += 1
            }
        }
        XCTAssertLessThanOrEqual(runs, 10)
        XCTAssertGreaterThanOrEqual(runs, 8)
        XCTAssertNil(scheduler.due(), "nothing left pending after the storm")
    }

    func testSingleChangeIsDueAfterTheCoalescingWindow() {
        var scheduler = ReevaluationScheduler()
        let start = ContinuousClock.now
        scheduler.note([.route("198.18.99.0/24")], at: start)
        XCTAssertFalse(scheduler.ready(now: start + .milliseconds(19)))
        XCTAssertTrue(scheduler.ready(now: start + .milliseconds(20)))
    }

    func testTargetsAreValidated() {
        let (topology, _) = host()
        let intent = Intent(bridges: ["br0": BridgeIntent()])
        XCTAssertEqual(try ReevaluationTarget.validate(bridges: ["br0"], ports: ["vnet1"], intent: intent, topology: topology),
                       .requested(bridges: ["br0"], ports: ["vnet1"]))
        let cases: [([String], [String], String)] = [
            (["nosuch0"], [], "no such device: nosuch0"),
            (["vnet1"], [], "vnet1 is not a bridge (it is a tun device)"),
            (["other0"], [], "other0 is not enabled (enabled: br0)"),
            ([], ["tap9"], "tap9 is not a port of an enabled bridge (enabled: br0)"),
            ([], ["eth0"], "eth0 is not a port of an enabled bridge (enabled: br0)"),
        ]
        for (bridges, ports, message) in cases {
            XCTAssertThrowsError(try ReevaluationTarget.validate(bridges: bridges, ports: ports, intent: intent,
                                                                 topology: topology)) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
        XCTAssertThrowsError(try ReevaluationTarget.validate(bridges: [], ports: [], intent: Intent(), topology: topology)) {
            XCTAssertEqual("\($0)", "no bridge is enabled: no flow is offloaded by flowctl")
        }
    }

    func testReevaluationRecreatesTheFlowtableWithItsRules() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "eth0")
        let desired = try Planner().plan(intent: Intent(bridges: ["br0": BridgeIntent()]), topology: t.topology).desired!
        let fake = FakeRulesetBackend()
        try fake.apply(try Differ().diff(kernel: nil, desired: desired), generation: nil)
        let kernel = try fake.table(FlowctlNames.table)
        XCTAssertTrue(try Differ().diff(kernel: kernel, desired: desired).isEmpty)
        let batch = try Differ().diff(kernel: kernel, desired: desired, reevaluate: true)
        let names = batch.changes.map { change -> String in
            switch change {
            case .deleteRule: "deleteRule"
            case .deleteFlowtable(let name): "deleteFlowtable \(name)"
            case .addFlowtable(let spec): "addFlowtable \(spec.name) \(spec.devices)"
            case .addRule(let rule): "addRule \(rule.id)"
            default: "\(change)"
            }
        }
        XCTAssertEqual(names, [
            "deleteRule", "deleteRule", "deleteRule", "deleteRule", "deleteFlowtable fastpath",
            "addFlowtable fastpath [\"eth0\", \"vnet1\"]",
            "addRule flowctl/v2 iifname tcp", "addRule flowctl/v2 iifname udp",
            "addRule flowctl/v2 oifname tcp", "addRule flowctl/v2 oifname udp",
        ])
        try fake.apply(batch, generation: nil)
        XCTAssertTrue(try Differ().diff(kernel: try fake.table(FlowctlNames.table), desired: desired).isEmpty,
                      "the same table after the re-evaluation")
    }
}
