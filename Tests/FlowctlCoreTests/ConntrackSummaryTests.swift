import FlowctlCore
import XCTest

/// The one conntrack fill warning that status, doctor and the daemon share.
final class ConntrackSummaryTests: XCTestCase {
    func summary(_ count: Int?, _ max: Int?) -> ConntrackSummary {
        ConntrackSummary(entries: count ?? 0, offloaded: 0, hardwareOffloaded: 0, count: count, max: max)
    }

    func testWarnsFromEightyPercent() {
        XCTAssertNil(summary(79, 100).fillWarning)
        XCTAssertFalse(summary(79, 100).isNearlyFull)
        XCTAssertTrue(summary(80, 100).isNearlyFull)
        XCTAssertEqual(summary(90, 100).fillWarning,
                       "conntrack table 90% full (90 of nf_conntrack_max 100): new flows will be dropped when it fills; raise net.netfilter.nf_conntrack_max")
        XCTAssertNil(summary(nil, 100).fillWarning, "an unknown count warns of nothing")
        XCTAssertNil(summary(5, 0).fillWarning)
    }
}
