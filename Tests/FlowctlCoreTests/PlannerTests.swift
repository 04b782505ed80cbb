import Foundation
import FlowctlCore
import XCTest

final class PlannerTests: XCTestCase {
    let planner = Planner()

    func enable(_ bridges: String..., uplinks: [String] = [], hw: HWOffloadMode = .auto) -> Intent {
        Intent(bridges: Dictionary(uniqueKeysWithValues: bridges.map {
            ($0, BridgeIntent(uplinks: uplinks, hwOffload: hw))
        }))
    }

    func reasons(_ plan: Plan, _ device: String) -> [String] {
        plan.devices.first { $0.name == device }?.reasons.map(\.description) ?? []
    }

    func testPlainBridgeListsPortsAndUplinkNeverTheBridge() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("vnet0", .tun, master: "br0")
        t.add("veth1", .veth, master: "br0")
        t.defaultRoute(via: "eth0")
        t.route("198.18.50.0/24", via: "br0")   // the host's address on br0: routed VM traffic
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        let desired = try XCTUnwrap(plan.desired)
        XCTAssertEqual(desired.flowtable.devices, ["eth0", "veth1", "vnet0"])
        XCTAssertFalse(desired.flowtable.devices.contains("br0"))
        XCTAssertEqual(desired.interfaceSet.elements, ["br0"])
        XCTAssertEqual(reasons(plan, "vnet0"), ["port of br0"])
        XCTAssertEqual(reasons(plan, "eth0"), ["uplink of br0 [default route]"])
        XCTAssertFalse(desired.flowtable.hardwareOffload)
        XCTAssertEqual(plan.offload?.hardware, false)
        XCTAssertEqual(desired.chain.priority, FlowctlNames.forwardPriority)
        XCTAssertEqual(desired.rules.map(\.id), [
            "flowctl/v2 iifname tcp", "flowctl/v2 iifname udp", "flowctl/v2 oifname tcp", "flowctl/v2 oifname udp",
        ])
        XCTAssertEqual(plan.warnings, [])
    }

    func testVLANFilteringBridgeWithTaggedPortsAndVLANUpper() throws {
        // br0 filters VLANs; VMs send tagged frames on their taps; the host
        // routes for VLAN 10 on br0.10. The kernel walks bridge + VLAN itself,
        // so only the taps go in the flowtable, and br0.10 joins the match set.
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("tap1", .tun, master: "br0")
        t.add("tap2", .tun, master: "br0")
        t.add("br0.10", .vlan, lower: "br0", vlan: 10)
        t.add("br0.20", .vlan, lower: "br0", vlan: 20)
        t.defaultRoute(via: "eth0")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        let desired = try XCTUnwrap(plan.desired)
        XCTAssertEqual(desired.flowtable.devices, ["eth0", "tap1", "tap2"])
        XCTAssertEqual(desired.interfaceSet.elements, ["br0", "br0.10", "br0.20"])
        XCTAssertEqual(plan.bridges.first?.interfaces, ["br0", "br0.10", "br0.20"])
    }

    func testVLANPortOfBridgeResolvesToItsLowerDevice() throws {
        var t = TopologyBuilder()
        t.add("eth1", .physical)
        t.add("br0", .bridge)
        t.add("eth1.30", .vlan, master: "br0", lower: "eth1", vlan: 30)
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth1"])
        XCTAssertEqual(reasons(plan, "eth1"), ["port of br0 (via eth1.30)"])
    }

    func testUplinkThatIsAVLANSubInterfaceResolvesToLowerDevice() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("eth0.20", .vlan, lower: "eth0", vlan: 20)
        t.add("br0", .bridge)
        t.add("vnet1", .veth, master: "br0")
        t.defaultRoute(via: "eth0.20")
        t.defaultRoute(.ipv6, via: "eth0.20")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet1"])
        XCTAssertFalse(plan.desired!.flowtable.devices.contains("eth0.20"))
        XCTAssertEqual(reasons(plan, "eth0"), ["uplink of br0 (via eth0.20) [default route]"])
    }

    func testQinQUplinkResolvesThroughBothTags() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("eth0.100", .vlan, lower: "eth0", vlan: 100)
        t.add("eth0.100.5", .vlan, lower: "eth0.100", vlan: 5)
        t.add("br0", .bridge)
        t.add("vnet1", .veth, master: "br0")
        t.defaultRoute(via: "eth0.100.5")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet1"])
    }

    func testBondUplinkIsListedNotItsSlaves() throws {
        var t = TopologyBuilder()
        t.add("bond0", .bond)
        t.add("eth0", .physical, master: "bond0")
        t.add("eth1", .physical, master: "bond0")
        t.add("bond0.7", .vlan, lower: "bond0", vlan: 7)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "bond0.7")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["bond0", "vnet1"])
    }

    func testUplinkBridgeResolvesToItsPorts() throws {
        // A second, not enabled bridge carries the host's uplink (br-ext with eth0).
        var t = TopologyBuilder()
        t.add("br-ext", .bridge)
        t.add("eth0", .physical, master: "br-ext")
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "br-ext")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet1"])
        XCTAssertEqual(reasons(plan, "eth0"), ["uplink of br0 (via br-ext) [default route]"])
        XCTAssertEqual(plan.desired?.interfaceSet.elements, ["br0"])
    }

    func testDefaultRouteThroughTheEnabledBridgeItselfAddsNothingTwice() throws {
        var t = TopologyBuilder()
        t.add("br0", .bridge)
        t.add("eth0", .physical, master: "br0")
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "br0")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet1"])
        XCTAssertEqual(reasons(plan, "eth0"), ["port of br0"])
    }

    func testTwoEnabledBridgesShareOneUplink() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("br1", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.add("vnet2", .tun, master: "br1")
        t.defaultRoute(via: "eth0")
        let plan = try planner.plan(intent: enable("br0", "br1"), topology: t.topology)
        let desired = try XCTUnwrap(plan.desired)
        // One flowtable: a device can be in only one flowtable of a table,
        // and both ends of a flow must be in the same one.
        XCTAssertEqual(desired.flowtable.devices, ["eth0", "vnet1", "vnet2"])
        XCTAssertEqual(reasons(plan, "eth0"), ["uplink of br0 [default route]", "uplink of br1 [default route]"])
        XCTAssertEqual(desired.interfaceSet.elements, ["br0", "br1"])
        XCTAssertEqual(plan.bridges.map(\.name), ["br0", "br1"])
    }

    func testPortMovedBetweenBridgesFollowsItsBridge() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("br1", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "eth0")
        let before = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(before.desired?.flowtable.devices, ["eth0", "vnet1"])
        t.setMaster("vnet1", "br1")   // moved to a bridge that is not enabled
        let after = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(after.desired?.flowtable.devices, ["eth0"])
        let both = try planner.plan(intent: enable("br0", "br1"), topology: t.topology)
        XCTAssertEqual(reasons(both, "vnet1"), ["port of br1"])
    }

    func testConfiguredUplinkOverridesDefaultRoutes() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("eth1", .physical)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "eth0")
        let plan = try planner.plan(intent: enable("br0", uplinks: ["eth1"]), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth1", "vnet1"])
        XCTAssertEqual(reasons(plan, "eth1"), ["uplink of br0 [--uplink]"])
    }

    func testMultipathDefaultRouteListsEveryNextHop() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("eth1", .physical)
        t.add("br0", .bridge)
        t.defaultRoute(via: "eth0", "eth1")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "eth1"])
        XCTAssertTrue(plan.warnings.contains { $0.contains("br0 has no ports yet") })
    }

    func testNoDefaultRouteWarns() throws {
        var t = TopologyBuilder()
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["vnet1"])
        XCTAssertTrue(plan.warnings.contains { $0.contains("no default route") })
    }

    func testEmptyIntentWantsNoTable() throws {
        let plan = try planner.plan(intent: Intent(), topology: TopologyBuilder().topology)
        XCTAssertNil(plan.desired)
    }

    // MARK: bad input

    func testUnknownBridgeIsAnError() {
        XCTAssertThrowsError(try planner.plan(intent: enable("br9"), topology: TopologyBuilder().topology,
                                              required: ["br9"])) { error in
            XCTAssertEqual(error as? PlanError, .bridgeNotFound("br9"))
            XCTAssertEqual("\(error)", "no such device: br9")
        }
    }

    func testNotABridgeIsAnError() {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        XCTAssertThrowsError(try planner.plan(intent: enable("eth0"), topology: t.topology, required: ["eth0"])) {
            XCTAssertEqual("\($0)", "eth0 is not a bridge (it is a physical device)")
        }
    }

    func testUnknownUplinkIsAnError() {
        var t = TopologyBuilder()
        t.add("br0", .bridge)
        XCTAssertThrowsError(try planner.plan(intent: enable("br0", uplinks: ["eth7"]), topology: t.topology,
                                              required: ["br0"])) {
            XCTAssertEqual($0 as? PlanError, .uplinkNotFound(bridge: "br0", uplink: "eth7"))
        }
    }

    func testMissingBridgeThatIsNotRequiredIsLeftOutWithAWarning() throws {
        var t = TopologyBuilder()
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        let plan = try planner.plan(intent: enable("br0", "gone0"), topology: t.topology, required: ["br0"])
        XCTAssertEqual(plan.bridges.map(\.name), ["br0"])
        XCTAssertEqual(plan.desired?.flowtable.devices, ["vnet1"])
        XCTAssertTrue(plan.warnings.contains { $0.hasPrefix("no such device: gone0") })
    }

    // MARK: hardware offload

    func testHardwareOffloadAutoNeedsEveryDevice() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical, hw: true)
        t.add("eth1", .physical, hw: true)
        t.add("br0", .bridge)
        t.add("eth1.5", .vlan, master: "br0", lower: "eth1", vlan: 5)
        t.defaultRoute(via: "eth0")
        let all = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(all.desired?.flowtable.hardwareOffload, true)
        XCTAssertEqual(all.offload?.description, "hardware (every device has hw-tc-offload)")
        t.add("vnet1", .tun, master: "br0")
        let mixed = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(mixed.desired?.flowtable.hardwareOffload, false)
        XCTAssertEqual(mixed.offload?.reason, "hw-tc-offload missing on vnet1")
        let off = try planner.plan(intent: enable("br0", hw: .off), topology: t.topology)
        XCTAssertEqual(off.desired?.flowtable.hardwareOffload, false)
    }

    func testHardwareOffloadOnFailsNamingTheDevices() {
        var t = TopologyBuilder()
        t.add("eth0", .physical, hw: true)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.add("vnet2", .tun, master: "br0", hw: nil)
        t.defaultRoute(via: "eth0")
        XCTAssertThrowsError(try planner.plan(intent: enable("br0", hw: .on), topology: t.topology)) {
            XCTAssertEqual($0 as? PlanError, .hardwareOffloadUnsupported(devices: ["vnet1", "vnet2"]))
        }
    }

    func hardwareHost() -> TopologyBuilder {
        var t = TopologyBuilder()
        t.add("eth0", .physical, hw: true)
        t.add("br0", .bridge)
        t.add("eth1", .physical, master: "br0", hw: true)
        t.defaultRoute(via: "eth0")
        return t
    }

    func testRefusedHardwareIsPlannedInSoftwareWhileTheDevicesAreWithinTheRefusal() throws {
        var t = hardwareHost()
        let refusal = HardwareRefusal(devices: ["eth0", "eth1"], refused: ["eth0", "eth1"], why: "Operation not supported")
        XCTAssertEqual(refusal.reason, "the kernel refused hardware offload on eth0, eth1: Operation not supported")
        let same = try planner.plan(intent: enable("br0"), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(same.desired?.flowtable.hardwareOffload, false)
        XCTAssertEqual(same.offload?.description,
                       "software (the kernel refused hardware offload on eth0, eth1: Operation not supported)")
        // Fewer devices: still within what was refused.
        t.setMaster("eth1", nil)
        let fewer = try planner.plan(intent: enable("br0"), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(fewer.offload?.hardware, false)
        XCTAssertEqual(fewer.offload?.reason, refusal.reason)
        // A device beyond the refusal: hardware is tried again.
        t.setMaster("eth1", "br0")
        t.add("eth2", .physical, master: "br0", hw: true)
        let more = try planner.plan(intent: enable("br0"), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(more.desired?.flowtable.hardwareOffload, true)
        XCTAssertEqual(more.offload?.reason, "every device has hw-tc-offload")
    }

    func testARefusalNeverOverridesOnOffOrMissingHwTCOffload() throws {
        var t = hardwareHost()
        let refusal = HardwareRefusal(devices: ["eth0", "eth1", "vnet1"], reason: "refused")
        let on = try planner.plan(intent: enable("br0", hw: .on), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(on.desired?.flowtable.hardwareOffload, true, "--hw-offload on always asks the kernel")
        let off = try planner.plan(intent: enable("br0", hw: .off), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(off.offload?.reason, "--hw-offload off")
        t.add("vnet1", .tun, master: "br0")
        let lacking = try planner.plan(intent: enable("br0"), topology: t.topology, hardwareRefusal: refusal)
        XCTAssertEqual(lacking.offload?.reason, "hw-tc-offload missing on vnet1")
    }

    func testInterfaceNameValidation() {
        XCTAssertTrue(Planner.isValidInterfaceName("br0"))
        XCTAssertTrue(Planner.isValidInterfaceName("eth0.100"))
        XCTAssertTrue(Planner.isValidInterfaceName("abcdefghijklmno"))
        XCTAssertFalse(Planner.isValidInterfaceName("abcdefghijklmnop"))
        XCTAssertFalse(Planner.isValidInterfaceName(""))
        XCTAssertFalse(Planner.isValidInterfaceName("a/b"))
        XCTAssertFalse(Planner.isValidInterfaceName("a:b"))
        XCTAssertFalse(Planner.isValidInterfaceName("a b"))
        XCTAssertFalse(Planner.isValidInterfaceName(".."))
    }
}

final class BridgeAddressWarningTests: XCTestCase {
    func topology(fixed: Bool?) -> Topology {
        Topology(links: [
            Link(index: 2, name: "eth0", kind: .physical),
            Link(index: 3, name: "br0", kind: .bridge, addressFixed: fixed),
            Link(index: 4, name: "vnet0", kind: .tun, masterIndex: 3),
        ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2]),
                    Route(family: .ipv4, destination: "198.18.50.0/24", prefixLength: 24, outputIndices: [3])])
    }

    func testABridgeWithoutAFixedMACIsWarnedAbout() throws {
        let intent = Intent(bridges: ["br0": BridgeIntent()])
        let loose = try Planner().plan(intent: intent, topology: topology(fixed: false))
        XCTAssertEqual(loose.warnings.count, 1)
        XCTAssertTrue(loose.warnings[0].hasPrefix("br0 has no fixed MAC address"), loose.warnings[0])
        XCTAssertEqual(try Planner().plan(intent: intent, topology: topology(fixed: true)).warnings, [])
        XCTAssertEqual(try Planner().plan(intent: intent, topology: topology(fixed: nil)).warnings, [],
                       "unknown (no sysfs) is not a warning")
    }
}

/// Reach: every routed path of an enabled bridge, and honesty about a
/// bridge that only switches.
final class RoutedUplinkTests: XCTestCase {
    let planner = Planner()
    func enable(_ names: String...) -> Intent {
        Intent(bridges: Dictionary(uniqueKeysWithValues: names.map { ($0, BridgeIntent()) }))
    }

    func host() -> TopologyBuilder {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("eth1", .physical)
        t.add("stor0", .physical)
        t.add("pr0", .physical)
        t.add("bond0", .bond)
        t.add("eth2", .physical, master: "bond0")
        t.add("br0", .bridge)
        t.add("vnet0", .tun, master: "br0")
        t.route("198.18.50.0/24", via: "br0")
        return t
    }

    func uplinks(_ plan: Plan) -> [String: String] {
        Dictionary(uniqueKeysWithValues: plan.devices.compactMap { device in
            device.reasons.first { if case .uplink = $0 { true } else { false } }.map { (device.name, $0.description) }
        })
    }

    func testEveryRoutedPathIsAnUplink() throws {
        var t = host()
        t.defaultRoute(via: "eth0", "eth1")                  // ECMP: both nexthops
        t.route("198.18.99.0/24", via: "stor0")               // a storage network
        t.route("198.18.98.7/32", via: "stor0")
        t.route("0.0.0.0/0", via: "pr0", table: 100)          // a policy-routing table
        t.route("198.18.97.0/24", via: "bond0")               // a bond, as itself
        t.route("fe80::/64", via: "vnet0")                     // link-local: every device has one
        t.route("ff00::/8", via: "vnet0")
        t.route("198.18.96.0/24", via: "lo")                  // nowhere to offload
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["bond0", "eth0", "eth1", "pr0", "stor0", "vnet0"])
        XCTAssertEqual(uplinks(plan), [
            "eth0": "uplink of br0 [default route]",
            "eth1": "uplink of br0 [default route]",
            "pr0": "uplink of br0 [default route]",
            "stor0": "uplink of br0 [route 198.18.98.7/32 and 1 more]",
            "bond0": "uplink of br0 [route 198.18.97.0/24]",
        ])
        XCTAssertEqual(plan.bridges.first?.layer2Only, false)
        XCTAssertEqual(plan.warnings, [])
    }

    func testNoDefaultRouteStillOffloadsTheRoutedOnes() throws {
        var t = host()
        t.route("198.18.99.0/24", via: "stor0")
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["stor0", "vnet0"])
        XCTAssertTrue(plan.warnings.contains { $0.hasPrefix("no default route and no --uplink for br0") }, "\(plan.warnings)")
    }

    func testConfiguredUplinksStillOverride() throws {
        var t = host()
        t.defaultRoute(via: "eth0")
        t.route("198.18.99.0/24", via: "stor0")
        let plan = try planner.plan(intent: Intent(bridges: ["br0": BridgeIntent(uplinks: ["eth1"])]), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth1", "vnet0"])
        XCTAssertEqual(uplinks(plan), ["eth1": "uplink of br0 [--uplink]"])
    }

    func testABridgeThatOnlySwitchesIsReportedAsLayer2Only() throws {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br1", .bridge)
        t.add("vnet1", .tun, master: "br1")
        t.defaultRoute(via: "eth0")
        t.route("fe80::/64", via: "br1")   // an IPv6 link-local route is no address for routing
        let plan = try planner.plan(intent: enable("br1"), topology: t.topology)
        XCTAssertEqual(plan.bridges.first?.layer2Only, true)
        XCTAssertTrue(plan.warnings.contains { $0.hasPrefix("br1 only switches at layer 2") }, "\(plan.warnings)")
        // A route through its VLAN upper makes it routed.
        t.add("br1.10", .vlan, lower: "br1", vlan: 10)
        t.route("198.18.51.0/24", via: "br1.10")
        XCTAssertEqual(try planner.plan(intent: enable("br1"), topology: t.topology).bridges.first?.layer2Only, false)
    }

    func testExcludedUplinksAreLeftOut() throws {
        var t = host()
        t.defaultRoute(via: "eth0")
        t.route("198.18.99.0/24", via: "stor0")
        t.add("wg0", .other("wireguard"))
        t.route("198.18.95.0/24", via: "wg0")
        let options = BridgeIntent(excludedUplinks: ["stor0", "wg*"])
        let plan = try planner.plan(intent: Intent(bridges: ["br0": options]), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet0"])
        // Old state files have no such key.
        let old = try JSONDecoder().decode(BridgeIntent.self, from: Data(#"{"uplinks":[],"hwOffload":"auto"}"#.utf8))
        XCTAssertEqual(old.excludedUplinks, [])
        XCTAssertThrowsError(try BridgeIntent(excludedUplinks: ["a/b"]).validate(bridge: "br0"))
    }

    /// Planning stays linear in routes: a routed host with a /32 per VM.
    func testTenThousandRoutes() throws {
        var t = host()
        t.defaultRoute(via: "eth0")
        for index in 0..<10_000 {
            t.route("198.18.\(index / 250).\(index % 250)/32", via: index % 2 == 0 ? "stor0" : "eth1")
        }
        let plan = try planner.plan(intent: enable("br0"), topology: t.topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "eth1", "stor0", "vnet0"])
        XCTAssertEqual(uplinks(plan)["stor0"], "uplink of br0 [route 198.18.0.0/32 and 4999 more]")
    }
}

/// Bridges by pattern: libvirt (`virbr*`), Docker (`br-*`), Kubernetes
/// (`cni0`) create bridges when they need them.
final class BridgePatternTests: XCTestCase {
    func host() -> TopologyBuilder {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("vnet0", .tun, master: "br0")
        t.add("virbr0", .bridge)
        t.add("vnet1", .tun, master: "virbr0")
        t.add("virbr1", .bridge)
        t.add("vnet2", .tun, master: "virbr1")
        t.add("virbr-nic", .veth)   // matches, but is not a bridge
        t.defaultRoute(via: "eth0")
        for bridge in ["br0", "virbr0", "virbr1"] { t.route("198.18.\(t.index(bridge)).0/24", via: bridge) }
        return t
    }

    func testAPatternEnablesEveryMatchingBridgeWithItsPorts() throws {
        let intent = Intent(bridges: ["virbr*": BridgeIntent()])
        let plan = try Planner().plan(intent: intent, topology: host().topology)
        XCTAssertEqual(plan.bridges.map(\.name), ["virbr0", "virbr1"])
        XCTAssertEqual(plan.bridges.map(\.pattern), ["virbr*", "virbr*"])
        // vnet0: br0 (not enabled) has a route, so the VMs behind it are reached through it.
        XCTAssertEqual(plan.desired?.flowtable.devices, ["eth0", "vnet0", "vnet1", "vnet2"])
        XCTAssertTrue(plan.devices.first { $0.name == "vnet0" }?.reasons.allSatisfy {
            $0.description.hasPrefix("uplink of virbr") && $0.description.contains("(via br0)")
        } ?? false)
        XCTAssertEqual(Set(plan.desired?.interfaceSet.elements ?? []), ["virbr0", "virbr1"])
        XCTAssertEqual(plan.warnings, [])
    }

    func testAnExactNameWinsOverAPatternAndANewBridgeJoins() throws {
        var t = host()
        let intent = Intent(bridges: ["virbr*": BridgeIntent(hwOffload: .off), "virbr1": BridgeIntent(uplinks: ["eth0"])])
        var plan = try Planner().plan(intent: intent, topology: t.topology)
        XCTAssertEqual(plan.bridges.map { "\($0.name) \($0.pattern ?? "-") \($0.intent.uplinks)" },
                       ["virbr1 - [\"eth0\"]", "virbr0 virbr* []"])
        XCTAssertEqual(intent.key(enabling: "virbr1"), "virbr1")
        XCTAssertEqual(intent.key(enabling: "virbr9"), "virbr*")
        XCTAssertNil(intent.key(enabling: "br0"))
        // A bridge created later that matches is planned with its ports.
        t.add("virbr9", .bridge)
        t.add("vnet9", .tun, master: "virbr9")
        plan = try Planner().plan(intent: intent, topology: t.topology)
        XCTAssertTrue(plan.desired?.flowtable.devices.contains("vnet9") ?? false)
    }

    func testAPatternThatMatchesNothingYetIsSaid() throws {
        let plan = try Planner().plan(intent: Intent(bridges: ["br-*": BridgeIntent()]), topology: host().topology,
                                      required: ["br-*"])
        XCTAssertEqual(plan.bridges, [])
        XCTAssertTrue(plan.warnings.contains { $0.hasPrefix("pattern br-* matches no bridge yet") }, "\(plan.warnings)")
        XCTAssertTrue(Intent.isPattern("cni[0-9]"))
        XCTAssertFalse(Intent.isPattern("br0"))
    }
}
