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
