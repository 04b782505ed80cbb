import FlowctlCore
import FlowctlTesting
import XCTest

/// doctor against the fakes: what it finds, how it names what is missing.
final class DoctorTests: XCTestCase {
    let topology = FakeTopologySource(Topology(links: [
        Link(index: 2, name: "eth0", kind: .physical, hwTCOffload: true),
        Link(index: 3, name: "br0", kind: .bridge),
        Link(index: 4, name: "vnet0", kind: .tun, masterIndex: 3),
    ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])]))
    let conntrack = FakeConntrack(ConntrackSummary(entries: 90, offloaded: 3, hardwareOffloaded: 0, count: 90, max: 100))

    func host(compatMode: String? = "1") -> Doctor.Host {
        Doctor.Host(isRoot: true) { $0 == "ipv4/nexthop_compat_mode" ? compatMode : nil }
    }

    func check(_ report: Doctor.Report, _ name: String) -> Doctor.Check? { report.checks.first { $0.name == name } }

    func testAKernelWithEverythingIsUsable() throws {
        let report = Doctor.diagnose(topology: topology, backend: FakeRulesetBackend(), conntrack: conntrack,
                                     intent: Intent(bridges: ["br0": BridgeIntent()]), host: host())
        XCTAssertTrue(report.usable, "\(report.checks)")
        XCTAssertEqual(check(report, "conntrack capacity")?.status, .warning, "90% full")
        XCTAssertEqual(check(report, "conntrack capacity")?.detail, "90 of nf_conntrack_max 100 in use (90.0%)")
        XCTAssertEqual(check(report, "bridge br0")?.status, .warning, "nothing routed through br0: layer 2 only")
        XCTAssertEqual(check(report, "device eth0 (physical)")?.detail, "hw-tc-offload on: hardware offload possible")
        XCTAssertNil(check(report, "nexthop objects"), "compat mode 1 sees every nexthop's device")
    }

    func testMissingFlowtablesAreNamedWithTheirKernelOption() throws {
        let backend = FakeRulesetBackend()
        backend.supportsFlowtables = false
        let report = Doctor.diagnose(topology: topology, backend: backend, conntrack: conntrack, intent: Intent(),
                                     host: host())
        XCTAssertFalse(report.usable)
        let flowtables = try XCTUnwrap(report.checks.first { $0.status == .missing })
        XCTAssertTrue(flowtables.kernelOptions.contains("CONFIG_NF_FLOW_TABLE"), "\(flowtables)")
        XCTAssertTrue(report.checks.contains { $0.detail == "cannot be tried without flowtables" })
    }

    func testNexthopCompatModeZeroIsAWarning() throws {
        let report = Doctor.diagnose(topology: topology, backend: FakeRulesetBackend(), conntrack: conntrack,
                                     intent: Intent(), host: host(compatMode: "0"))
        XCTAssertTrue(report.usable)
        let nexthops = try XCTUnwrap(check(report, "nexthop objects"))
        XCTAssertEqual(nexthops.status, .warning)
        XCTAssertTrue(nexthops.detail.contains("--uplink"), nexthops.detail)
    }
}
