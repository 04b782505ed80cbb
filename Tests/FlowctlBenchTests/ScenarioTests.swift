@testable import FlowctlBench
import Foundation
import XCTest

final class ScenarioTests: XCTestCase {
    static let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Scenarios")

    func testEveryShippedScenarioParses() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.scenarios.path)
            .filter { $0.hasSuffix(".toml") }.sorted()
        XCTAssertEqual(files, ["containers.toml", "ipv6.toml", "nat.toml", "quickstart.toml", "taps.toml", "vlan.toml"])
        for file in files {
            let scenario = try Scenario.load(path: Self.scenarios.appendingPathComponent(file).path)
            XCTAssertEqual(scenario.name + ".toml", file)
            XCTAssertFalse(scenario.guests.isEmpty)
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
        XCTAssertEqual(scenario.modes, [.slow, .flowctl, .nftFile("Scenarios/vlan-handwritten.nft")])
        XCTAssertEqual(scenario.expect.minRatio, 1.5)
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
        XCTAssertEqual(scenario.traffic.generator, .pktgen)
        let plan = try TopologyPlan(scenario)
        let steps = plan.setup.map(\.description)
        XCTAssertTrue(steps.contains("ip link add br0 type bridge vlan_filtering 1"))
        XCTAssertTrue(steps.contains("bridge vlan add dev br0 vid 10 self"))
        XCTAssertTrue(steps.contains("ip link add link br0 name br0.10 type vlan id 10"))
        XCTAssertTrue(steps.contains("bridge vlan add dev vnet-vm1 vid 10"))
        XCTAssertTrue(steps.contains("ip -n fb-vm1 link add link eth0 name eth0.10 type vlan id 10"))
        XCTAssertTrue(steps.contains("ip link add link up-ext name up-ext.20 type vlan id 20"))
        XCTAssertTrue(steps.contains("ip route replace default via 198.18.20.2 dev up-ext.20"))
        XCTAssertTrue(steps.contains("ip -n fb-ext route add 198.18.10.0/24 via 198.18.20.1"))
        XCTAssertEqual(plan.realDevices, ["vnet-vm1", "up-ext"], "what the hand-written file lists")
        XCTAssertEqual(plan.namespaces["vm1"], "fb-vm1")
        XCTAssertEqual(plan.addresses["ext"], ["198.18.20.2"])
        // Teardown removes exactly what setup created, namespaces and bridges.
        let teardown = Set(plan.teardown.map(\.description))
        XCTAssertEqual(teardown, ["ip netns del fb-vm1", "ip netns del fb-ext", "ip link del br0"])
    }

    func testContainersGetNumberedNamespacesAndAddresses() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("containers.toml").path)
        let plan = try TopologyPlan(scenario)
        XCTAssertEqual(plan.namespaces.count, 17)
        XCTAssertEqual(plan.addresses["c0"], ["198.18.4.10"])
        XCTAssertEqual(plan.addresses["c15"], ["198.18.4.25"])
        XCTAssertEqual(TopologyPlan.offset("2001:2::ff/64", by: 2), "2001:2::101/64")
    }

    func testNatAddsMasqueradeAndRemovesIt() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("nat.toml").path)
        let plan = try TopologyPlan(scenario)
        XCTAssertTrue(plan.setup.contains { $0.input?.contains("oifname \"up-ext\" masquerade") ?? false })
        XCTAssertTrue(plan.teardown.contains { $0.description == "nft delete table ip fb_nat" })
    }

    func testTapGuestsGetATapPortAndARelay() throws {
        let scenario = try Scenario.load(path: ScenarioTests.scenarios.appendingPathComponent("taps.toml").path)
        let plan = try TopologyPlan(scenario)
        let steps = plan.setup.map(\.description)
        XCTAssertTrue(steps.contains("ip tuntap add dev tap-vm1 mode tap"))
        XCTAssertTrue(steps.contains("ip link set tap-vm1 master br0"))
        XCTAssertTrue(steps.contains("ip -n fb-vm1 link add eth0 type veth peer name relay0"))
        XCTAssertEqual(plan.helpers.first, ["traffic", "tap-relay", "--tap", "tap-vm1", "--netns", "/run/netns/fb-vm1", "--device", "relay0"])
        XCTAssertEqual(plan.helpers.count, 2)
        XCTAssertTrue(plan.teardown.contains { $0.description == "ip link del tap-vm1" })
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

    func testRunResultsAreCheckedAndSummarized() throws {
        XCTAssertThrowsError(try RunResult.from(sender: #"{"packets":10}"#, sink: #"{"packets":11,"activeSeconds":1}"#, kind: .udp))
        var slow = try RunResult.from(sender: #"{"packets":100,"duration":1}"#, sink: #"{"packets":100,"bytes":6400,"activeSeconds":1}"#, kind: .udp)
        slow.mode = "slow"
        var fast = try RunResult.from(sender: #"{"packets":300,"duration":1}"#, sink: #"{"packets":240,"bytes":15360,"activeSeconds":1}"#, kind: .udp)
        fast.mode = "flowctl"
        let result = ScenarioResult(scenario: "s", description: "", traffic: Scenario.Traffic(kind: .udp, from: "a", to: "b", size: 18, flows: 1, duration: 1),
                                    runs: [slow, fast], expect: Scenario.Expectation(minRatio: 1.5), modes: ["slow", "flowctl"])
        let summaries = result.summaries
        XCTAssertEqual(summaries.first { $0.mode == "flowctl" }?.ratioToSlow, 2.4)
        XCTAssertEqual(summaries.first { $0.mode == "flowctl" }?.lossFraction?.median ?? 0, 0.2, accuracy: 1e-9)
        XCTAssertEqual(result.verdicts, ["flowctl / slow packets/s = 2.40 (expected >= 1.50): met"])
        let svg = BenchReport.svg(result)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains(">flowctl</text>"))
        XCTAssertTrue(BenchReport.table(result, environment: "test").contains("2.40x"))
    }
}
