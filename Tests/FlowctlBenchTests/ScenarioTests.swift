@testable import FlowctlBench
import Foundation
import XCTest

final class ScenarioTests: XCTestCase {
    static let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Scenarios")

    func testEveryShippedScenarioParses() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.scenarios.path)
            .filter { $0.hasSuffix(".toml") }.sorted()
        XCTAssertEqual(files, ["containers.toml", "crr.toml", "firewall.toml", "ipv6.toml", "nat.toml", "quickstart.toml",
                               "rr-ipv6.toml", "scale.toml", "taps.toml", "tcp-bulk.toml", "vlan.toml"])
        for file in files {
            let scenario = try Scenario.load(path: Self.scenarios.appendingPathComponent(file).path)
            XCTAssertEqual(scenario.name + ".toml", file)
            XCTAssertFalse(scenario.guests.isEmpty)
            _ = try TopologyPlan(scenario)
            // Every file a mode or the host's rules name is shipped.
            let root = Self.scenarios.deletingLastPathComponent()
            for case .nftFile(let path) in scenario.modes {
                XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "\(file): \(path)")
            }
            for path in scenario.hostRules {
                XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "\(file): \(path)")
            }
        }
    }

    func testVlanScenarioModel() throws {
        let scenario = try Scenario.load(path: Self.scenarios.appendingPathComponent("vlan.toml").path)
        XCTAssertEqual(scenario.bridges.first?.vlanFiltering, true)
        XCTAssertEqual(scenario.bridges.first?.vlans, [Scenario.VLAN(id: 10, addresses: ["198.18.10.1/24"])])
        XCTAssertEqual(scenario.guests.first?.vlan, 10)
        XCTAssertEqual(scenario.externals.first?.vlan, 20)
        XCTAssertEqual(scenario.traffic.kind, .udp)
        XCTAssertEqual(scenario.traffic.size, 18)
        XCTAssertEqual(scenario.traffic.generator, .inject)
        XCTAssertEqual(scenario.traffic.sink, .drop)
        XCTAssertEqual(scenario.modes, [.slow, .flowctl, .nftFile("Scenarios/vlan-handwritten.nft"),
                                        .nftFile("Scenarios/peers/vlan-firewall4.nft"), .nftFile("Scenarios/peers/vlan-firewalld.nft"),
                                        .nftFile("Scenarios/peers/vlan-kindnet.nft")])
        XCTAssertEqual(scenario.expect.minRatio, 2.0)
        XCTAssertEqual(scenario.expect.minRatioTo, ["nft:Scenarios/vlan-handwritten.nft": 0.97])
        let firewall = try Scenario.load(path: Self.scenarios.appendingPathComponent("firewall.toml").path)
        XCTAssertEqual(firewall.hostRules, ["Scenarios/firewall/host-firewall.nft"])
    }

    let minimal = """
        name = "t"
        [[bridge]]
        name = "br0"
        [[guest]]
        name = "vm1"
        bridge = "br0"
        addresses = ["198.18.1.2/24"]
        [traffic]
        kind = "udp"
        from = "vm1"
        to = "vm1"
        """

    func testDefaults() throws {
        let scenario = try Scenario.parse(minimal, file: "t.toml")
        XCTAssertEqual(scenario.modes, [.slow, .flowctl])
        XCTAssertEqual(scenario.repetitions, 5)
        XCTAssertEqual(scenario.traffic.flows, 1)
        XCTAssertEqual(scenario.guests.first?.attach, .veth)
    }

    func assertError(_ text: String, line: Int?, contains fragment: String, file: StaticString = #filePath,
                     sourceLine: UInt = #line) {
        XCTAssertThrowsError(try Scenario.parse(text, file: "bad.toml"), file: file, line: sourceLine) { error in
            guard let error = error as? ScenarioError else { return XCTFail("\(error)", file: file, line: sourceLine) }
            XCTAssertEqual(error.file, "bad.toml", file: file, line: sourceLine)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(error.description.contains(fragment), "\(error)", file: file, line: sourceLine)
        }
    }

    func testSyntaxErrorHasLine() {
        assertError("name = \"x\"\n[[bridge]\nname = \"br0\"\n", line: 2, contains: "TOML syntax")
    }

    func testUnknownKeyNamesLineAndExpectedKeys() {
        assertError(minimal.replacingOccurrences(of: "bridge = \"br0\"\n", with: "bridge = \"br0\"\nattached = \"veth\"\n"),
                    line: 7, contains: "unknown key \"attached\" in [guest]; expected one of: addresses, attach")
    }

    func testWrongTypes() {
        assertError(minimal.replacingOccurrences(of: "kind = \"udp\"", with: "kind = \"udp\"\nflows = \"four\""),
                    line: 10, contains: "\"flows\" must be an integer, found")
        assertError(minimal.replacingOccurrences(of: "kind = \"udp\"", with: "kind = \"sctp\""),
                    line: 9, contains: "\"kind\" must be one of udp, tcp-bulk, tcp-crr, rr")
    }

    func testReferencesAreChecked() {
        assertError(minimal.replacingOccurrences(of: "bridge = \"br0\"\naddresses", with: "bridge = \"br9\"\naddresses"),
                    line: 6, contains: "guest bridge \"br9\" is not one of the [[bridge]] names")
        assertError(minimal.replacingOccurrences(of: "to = \"vm1\"", with: "to = \"nowhere\""),
                    line: 11, contains: "traffic to \"nowhere\" is not a guest or external name")
    }

    func testAddressesMustBeBenchmarkRanges() {
        assertError(minimal.replacingOccurrences(of: "198.18.1.2/24", with: "10.0.0.2/24"),
                    line: 7, contains: "outside the benchmarking ranges")
        assertError(minimal.replacingOccurrences(of: "198.18.1.2/24", with: "198.18.1.2"),
                    line: 7, contains: "is not an address with prefix length")
        XCTAssertTrue(Reader.isTestAddress("198.19.255.1/24"))
        XCTAssertTrue(Reader.isTestAddress("2001:2:0:ffff::1/64"))
        XCTAssertFalse(Reader.isTestAddress("198.20.0.1/24"))
        XCTAssertFalse(Reader.isTestAddress("2001:3::1/64"))
    }

    func testMissingPiecesAndBadModes() {
        assertError("name = \"x\"\n", line: nil, contains: "at least one [[bridge]] is required")
        assertError(minimal.replacingOccurrences(of: "[traffic]\nkind = \"udp\"\nfrom = \"vm1\"\nto = \"vm1\"", with: ""),
                    line: nil, contains: "missing table [traffic]")
        assertError(minimal + "\n[run]\nmodes = [\"fast\"]\n", line: 13, contains: "mode \"fast\": expected \"slow\", \"flowctl\" or \"nft:FILE\"")
        assertError(minimal + "\n[run]\nrepetitions = 0\n", line: 13, contains: "\"repetitions\" must be between 1 and 1000")
    }
}

final class TopologyPlanTests: XCTestCase {
    func testVlanScenarioBuildsTaggedPortsUppersAndRoutes() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("vlan.toml").path)
        XCTAssertEqual(scenario.traffic.generator, .inject)
        let plan = try TopologyPlan(scenario)
        let steps = plan.setup.map(\.description)
        // The host is a namespace of its own, made first: nothing touches this machine's routes or sysctls.
        XCTAssertEqual(Array(steps.prefix(2)), ["ip netns add fb-host", "ip -n fb-host link set lo up"])
        let host = { (step: String) in "ip netns exec fb-host " + step }
        XCTAssertTrue(steps.contains(host("sysctl -qw net.ipv4.ip_forward=1")))
        XCTAssertTrue(steps.contains(host("ip link add br0 type bridge vlan_filtering 1")))
        XCTAssertTrue(steps.contains(host("bridge vlan add dev br0 vid 10 self")))
        XCTAssertTrue(steps.contains(host("ip link add link br0 name br0.10 type vlan id 10")))
        XCTAssertTrue(steps.contains(host("bridge vlan add dev vnet-vm1 vid 10")))
        XCTAssertTrue(steps.contains("ip -n fb-vm1 link add link eth0 name eth0.10 type vlan id 10"))
        XCTAssertTrue(steps.contains(host("ip link add link up-ext name up-ext.20 type vlan id 20")))
        XCTAssertTrue(steps.contains(host("ip route replace default via 198.18.20.2 dev up-ext.20")))
        XCTAssertTrue(steps.contains("ip -n fb-ext route add 198.18.10.0/24 via 198.18.20.1"))
        XCTAssertFalse(steps.contains { $0.hasPrefix("ip link") || $0.hasPrefix("ip route") || $0.hasPrefix("sysctl")
                                        || $0.hasPrefix("nft") || $0.hasPrefix("bridge") }, "every host step runs in fb-host")
        XCTAssertEqual(plan.attachments["vm1"], TopologyPlan.Attachment(namespace: "fb-vm1", port: "vnet-vm1", isTap: false,
                                                                        vlan: 10, gateways: ["198.18.10.1"]))
        XCTAssertEqual(plan.attachments["ext"], TopologyPlan.Attachment(namespace: "fb-ext", port: "up-ext", isTap: false,
                                                                        vlan: 20, gateways: ["198.18.20.1"]))
        XCTAssertEqual(plan.realDevices, ["vnet-vm1", "up-ext"], "what the hand-written file lists")
        XCTAssertEqual(plan.namespaces["vm1"], "fb-vm1")
        XCTAssertEqual(plan.addresses["ext"], ["198.18.20.2"])
        // Teardown removes exactly what setup created, namespaces and bridges.
        let teardown = Set(plan.teardown.map(\.description))
        XCTAssertEqual(teardown, ["ip netns del fb-vm1", "ip netns del fb-ext", host("ip link del br0"), "ip netns del fb-host"])
        XCTAssertEqual(plan.teardown.last?.description, "ip netns del fb-host", "the host's namespace goes last")
    }

    func testContainersGetNumberedNamespacesAndAddresses() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("containers.toml").path)
        let plan = try TopologyPlan(scenario)
        XCTAssertEqual(plan.namespaces.count, 17, "16 containers and the external (the host's namespace apart)")
        XCTAssertEqual(plan.addresses["c0"], ["198.18.4.10"])
        XCTAssertEqual(plan.addresses["c15"], ["198.18.4.25"])
        XCTAssertEqual(TopologyPlan.offset("2001:2::ff/64", by: 2), "2001:2::101/64")
    }

    func testNatAddsMasqueradeAndRemovesIt() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("nat.toml").path)
        let plan = try TopologyPlan(scenario)
        XCTAssertTrue(plan.setup.contains { $0.input?.contains("oifname \"up-ext\" masquerade") ?? false })
        XCTAssertTrue(plan.teardown.contains { $0.description == "ip netns exec fb-host nft delete table ip fb_nat" })
    }

    func testTapGuestsGetATapPortAndARelay() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("taps.toml").path)
        let plan = try TopologyPlan(scenario)
        let steps = plan.setup.map(\.description)
        XCTAssertTrue(steps.contains("ip netns exec fb-host ip tuntap add dev tap-vm1 mode tap"))
        XCTAssertTrue(steps.contains("ip netns exec fb-host ip link set tap-vm1 master br0"))
        XCTAssertEqual(plan.attachments["vm2"]?.isTap, true)
        XCTAssertTrue(steps.contains("ip -n fb-vm1 link add eth0 type veth peer name relay0"))
        XCTAssertEqual(plan.helpers.first, ["traffic", "tap-relay", "--tap", "tap-vm1", "--netns", "/run/netns/fb-vm1", "--device", "relay0"])
        XCTAssertEqual(plan.helpers.count, 2)
        XCTAssertTrue(plan.teardown.contains { $0.description == "ip netns exec fb-host ip link del tap-vm1" })
        XCTAssertEqual(plan.realDevices, ["tap-vm1", "tap-vm2"])
    }

    func testGeneratorMustBeKnownAndUDPForPktgen() {
        let base = """
            name = "t"
            [[bridge]]
            name = "br0"
            [[guest]]
            name = "vm1"
            bridge = "br0"
            [traffic]
            kind = "tcp-bulk"
            from = "vm1"
            to = "vm1"
            """
        XCTAssertThrowsError(try Scenario.parse(base + "\ngenerator = \"pktgen\"\n", file: "g.toml")) { error in
            XCTAssertTrue("\(error)".contains("sends UDP only"), "\(error)")
        }
        XCTAssertThrowsError(try Scenario.parse(base + "\ngenerator = \"trex\"\n", file: "g.toml")) { error in
            XCTAssertEqual((error as? ScenarioError)?.line, 11)
        }
    }
}

extension ScenarioTests {
    func assertRefused(_ text: String, contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Scenario.parse(text, file: "bad.toml"), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
        }
    }

    func testInjectAndDropSinkAreChecked() {
        // The traffic table's extra keys, then an external behind the host.
        func document(_ traffic: String, kind: String = "udp", from: String = "vm1", masquerade: Bool = false) -> String {
            minimal.replacingOccurrences(of: "to = \"vm1\"", with: "to = \"ext\"")
                .replacingOccurrences(of: "kind = \"udp\"", with: "kind = \"\(kind)\"")
                .replacingOccurrences(of: "from = \"vm1\"", with: "from = \"\(from)\"")
                + "\n" + traffic + "\n[[external]]\nname = \"ext\"\nhost_addresses = [\"198.18.2.1/24\"]\n"
                + "addresses = [\"198.18.2.2/24\"]\n" + (masquerade ? "masquerade = true\n" : "")
        }
        let parsed = try? Scenario.parse(document("generator = \"inject\"\nsink = \"drop\""), file: "g.toml")
        XCTAssertEqual(parsed?.traffic.generator, .inject)
        XCTAssertEqual(parsed?.traffic.sink, .drop)
        assertRefused(document("sink = \"drop\"", kind: "rr"), contains: "sink \"drop\" counts UDP only")
        assertRefused(document("generator = \"inject\"", masquerade: true), contains: "cannot do so through NAT")
        assertRefused(document("generator = \"inject\"", from: "ext"), contains: "is not a single [[guest]]")
        assertRefused(document("flows = 5000"), contains: "at most 4096 flows")
        XCTAssertEqual((try? Scenario.parse(document("generator = \"inject\"\nflows = 50000"), file: "g.toml"))?.traffic.flows, 50000)
        assertRefused(document("sink = \"null\""), contains: "\"sink\" must be \"socket\" or \"drop\"")
        assertRefused(minimal + "\n[expect]\nmin_ratio_to = { \"nft:x.nft\" = 0.97 }\n", contains: "\"nft:x.nft\" is not one of the modes")
        let reserved = try? Scenario.parse(minimal.replacingOccurrences(of: "\"vm1\"", with: "\"host\""), file: "h.toml")
        XCTAssertNotNil(reserved)
        XCTAssertThrowsError(try TopologyPlan(reserved!)) { error in
            XCTAssertTrue("\(error)".contains("reserved for the host's namespace"), "\(error)")
        }
    }
}
