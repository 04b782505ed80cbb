import XCTest

/// Tests/lab/daemon-e2e.sh in the lab kernel: `flowctl daemon` follows
/// hotplug bursts, port moves, VLAN uplinks, kill -9 and restart, and
/// `nft flush ruleset`.
final class DaemonEndToEndTests: XCTestCase {
    func testDaemonEndToEnd() throws {
        try Lab.runEndToEnd("Tests/lab/daemon-e2e.sh", passLine: "PASS daemon-e2e")
    }
}
