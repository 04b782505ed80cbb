import XCTest

/// Tests/lab/hardening-e2e.sh in the lab kernel: idle, trickling and 200
/// concurrent control clients, an idle metrics client, a second daemon in
/// the same and in another network namespace, one-shot writes while the
/// daemon runs, read commands that must not write, a VLAN port, and the
/// daemon's table checked against one-shot `plan` after each step.
final class HardeningEndToEndTests: XCTestCase {
    func testHardeningEndToEnd() throws {
        try Lab.runEndToEnd("Tests/lab/hardening-e2e.sh", passLine: "PASS hardening-e2e")
    }
}
