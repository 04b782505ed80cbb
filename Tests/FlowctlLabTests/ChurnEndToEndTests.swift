import XCTest

/// Tests/lab/churn-e2e.sh in the lab kernel: a seeded soak of 2,000 random
/// link events with kill -9 at random points; at every checkpoint the
/// daemon's flowtable equals the set the soak computes itself, and
/// one-shot `plan` agrees. The seed is in the output (replay: pass it to
/// the script).
final class ChurnEndToEndTests: XCTestCase {
    func testChurnSoakConverges() throws {
        try Lab.runEndToEnd("Tests/lab/churn-e2e.sh", passLine: "PASS churn-e2e")
    }
}
