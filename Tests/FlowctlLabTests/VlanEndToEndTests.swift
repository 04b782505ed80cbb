import Foundation
import FlowctlTesting
import XCTest

/// Tests/lab/vlan-e2e.sh in the lab kernel: tagged VM traffic (IPv4 and
/// IPv6, UDP and TCP) through a VLAN-filtering bridge and a VLAN uplink is
/// seen by the forward hook before `flowctl enable br0`, skips it once
/// offloaded (conntrack [OFFLOAD], flowtable on vnet1 and up0 only), and
/// `flowctl disable br0` removes flowctl's table only.
final class VlanEndToEndTests: XCTestCase {
    func testVlanBridgeFastPathEndToEnd() throws {
        try Lab.runEndToEnd("Tests/lab/vlan-e2e.sh", passLine: "PASS vlan-e2e")
    }
}

extension Lab {
    /// Runs one of Tests/lab/*.sh in the lab with this build's flowctl and
    /// fails with its whole output unless it exits 0 and prints `passLine`.
    static func runEndToEnd(_ script: String, passLine: String, timeout: Int = 600,
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let flowctl = Subprocess.product("flowctl")
        guard FileManager.default.isExecutableFile(atPath: flowctl) else {
            XCTFail("no flowctl binary next to the tests (\(flowctl)); run swift build first", file: file, line: line)
            return
        }
        let result = try run(["env", "FLOWCTL=\(flowctl)", script], timeout: timeout)
        XCTAssertEqual(result.status, 0, "\(script) failed in the lab:\n\(result)", file: file, line: line)
        XCTAssertTrue(result.stdout.contains(passLine), "\(script) did not print \(passLine):\n\(result)",
                      file: file, line: line)
    }
}
