import XCTest

/// Tests/lab/reach-e2e.sh in the lab kernel: a storage network behind a
/// specific route, ECMP nexthops, a policy-routing table and a bond are
/// uplinks; the replies of a TCP flow behind a non-default route take the
/// fast path; the daemon follows routes through new links; a bridge that
/// only switches is reported as layer-2-only.
final class ReachEndToEndTests: XCTestCase {
    func testEveryRoutedPathIsFast() throws {
        try Lab.runEndToEnd("Tests/lab/reach-e2e.sh", passLine: "PASS reach-e2e")
    }
}
