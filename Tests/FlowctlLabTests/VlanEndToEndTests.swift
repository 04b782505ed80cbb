import Foundation
import FlowctlTesting
import XCTest

/// Tests/lab/vlan-e2e.sh in the lab kernel: tagged VM traffic through a
/// VLAN-filtering bridge and a VLAN uplink is seen by the forward hook
/// before `flowctl enable br0`, skips it once offloaded (conntrack
/// [OFFLOAD]), and `flowctl disable br0` removes flowctl's table only.
final class VlanEndToEndTests: XCTestCase {
    func testVlanBridgeFastPathEndToEnd() throws {
        let flowctl = Subprocess.product("flowctl")
        guard FileManager.default.isExecutableFile(atPath: flowctl) else {
            XCTFail("no flowctl binary next to the tests (\(flowctl)); run swift build first")
            return
        }
        let result = try Lab.run(["env", "FLOWCTL=\(flowctl)", "Tests/lab/vlan-e2e.sh"], timeout: 600)
        XCTAssertEqual(result.status, 0, "Tests/lab/vlan-e2e.sh failed in the lab:\n\(result)")
        XCTAssertTrue(result.stdout.contains("PASS vlan-e2e"), "\(result)")
    }
}
