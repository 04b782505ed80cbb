@testable import FlowctlDaemon
import FlowctlCore
import Foundation
import Synchronization
import XCTest

/// The daemon's conntrack figures: dumps at most as often as they cost 1%
/// of a CPU, the count and limit behind the 80% guard always fresh.
final class ConntrackSamplerTests: XCTestCase {
    final class CountingSource: ConntrackSource {
        let state = Mutex((dumps: 0, count: 10, dumpTime: Duration.zero))
        func summary() throws -> ConntrackSummary {
            let (count, pause) = state.withLock { state -> (Int, Duration) in
                state.dumps += 1
                return (state.count, state.dumpTime)
            }
            if pause > .zero { Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18) }
            return ConntrackSummary(entries: count, offloaded: count / 2, hardwareOffloaded: 0, count: count, max: 100)
        }
        func capacity() -> (count: Int?, max: Int?) { (state.withLock { $0.count }, 100) }
        var dumps: Int { state.withLock { $0.dumps } }
    }

    func testReusesADumpButNotTheCount() throws {
        let source = CountingSource()
        let sampler = ConntrackSampler(source)
        let start = ContinuousClock.now
        XCTAssertEqual(try sampler.summary(maxAge: .seconds(1), now: start).offloaded, 5)
        source.state.withLock { $0.count = 95 }
        let cached = try sampler.summary(maxAge: .seconds(1), now: start + .milliseconds(500))
        XCTAssertEqual(source.dumps, 1, "younger than the age allowed: no second dump")
        XCTAssertEqual(cached.count, 95, "the count behind the 80% guard is always read")
        XCTAssertTrue(cached.isNearlyFull)
        XCTAssertEqual(cached.offloaded, 5, "offloaded flows come from the last dump")
        _ = try sampler.summary(maxAge: .seconds(1), now: start + .seconds(2))
        XCTAssertEqual(source.dumps, 2, "older than allowed, and the dump is cheap: dumped again")
    }

    /// A dump that takes 20 ms is not repeated within 2 s (100 times its
    /// cost), whatever age the caller allows.
    func testAnExpensiveDumpIsRepeatedAtMostAtOnePercent() throws {
        let source = CountingSource()
        source.state.withLock { $0.dumpTime = .milliseconds(20) }
        let sampler = ConntrackSampler(source)
        let start = ContinuousClock.now
        _ = try sampler.summary(maxAge: .seconds(1), now: start)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(sampler.lastCost), .milliseconds(20))
        _ = try sampler.summary(maxAge: .seconds(1), now: start + .milliseconds(1500))
        XCTAssertEqual(source.dumps, 1, "1.5 s after a 20 ms dump: within its 2 s budget")
        _ = try sampler.summary(maxAge: .seconds(1), now: start + .seconds(60))
        XCTAssertEqual(source.dumps, 2)
    }
}
