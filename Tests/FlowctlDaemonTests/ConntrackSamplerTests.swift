@testable import FlowctlDaemon
import FlowctlCore
import FlowctlProcess
import Foundation
import Synchronization
import XCTest

/// The daemon's conntrack figures: taken on the sampler's own thread, at
/// most as often as they cost 1% of a CPU; readers never wait for a dump,
/// and the count and limit behind the 80% guard are always fresh.
final class ConntrackSamplerTests: XCTestCase {
    /// A source whose dumps wait for the test to release them.
    final class GatedSource: ConntrackSource {
        let state = Locked((dumps: 0, count: 10, failing: false, open: false))
        let gate = DispatchSemaphore(value: 0)
        struct Failure: Error {}
        /// Lets every dump through from now on.
        func open() {
            state.withLock { $0.open = true }
            gate.signal()
        }
        func summary() throws -> ConntrackSummary {
            if !state.withLock({ $0.open }) { gate.wait() }
            let (count, failing) = state.withLock { state -> (Int, Bool) in
                state.dumps += 1
                return (state.count, state.failing)
            }
            if failing { throw Failure() }
            return ConntrackSummary(entries: count, offloaded: count / 2, hardwareOffloaded: 0, count: count, max: 100)
        }
        func capacity() -> (count: Int?, max: Int?) { (state.withLock { $0.count }, 100) }
        var dumps: Int { state.withLock { $0.dumps } }
    }

    /// Polls `condition` (the sampler's thread works on its own) for up to 10 s.
    func eventually(_ what: String, _ condition: () -> Bool) {
        for _ in 0..<1000 where !condition() { usleep(10_000) }
        XCTAssertTrue(condition(), what)
    }

    func testReadersNeverWaitForADumpAndTheCountIsFresh() {
        let source = GatedSource()
        let sampler = ConntrackSampler(source, interval: .seconds(3600))
        sampler.start()
        // The first dump is blocked in the source: a reader gets an answer at once.
        let early = sampler.latest()
        XCTAssertNil(early.summary)
        XCTAssertEqual(early.error, "the first conntrack sample is still being taken")
        source.gate.signal()
        eventually("the first dump's figures arrive") { sampler.latest().summary != nil }
        XCTAssertEqual(sampler.latest().summary?.offloaded, 5)
        source.state.withLock { $0.count = 95 }
        let later = sampler.latest()
        XCTAssertEqual(source.dumps, 1, "an hour's interval: no second dump")
        XCTAssertEqual(later.summary?.count, 95, "the count behind the 80% guard is read each time")
        XCTAssertEqual(later.summary?.entries, 95)
        XCTAssertEqual(later.summary?.offloaded, 5, "offloaded flows come from the last dump")
        XCTAssertTrue(later.summary?.isNearlyFull ?? false)
        source.open()
        sampler.stop()
    }

    func testAFailedDumpIsReportedAndTheLastFiguresKept() {
        let source = GatedSource()
        let sampler = ConntrackSampler(source, interval: .milliseconds(1))
        sampler.start()
        source.gate.signal()
        eventually("the first dump's figures arrive") { sampler.latest().summary != nil }
        source.state.withLock { $0.failing = true }
        source.gate.signal()
        eventually("the failure is reported") { sampler.latest().error != nil }
        XCTAssertEqual(sampler.latest().summary?.offloaded, 5, "the last good figures stay")
        source.open()
        sampler.stop()
    }

    /// A dump that took 20 ms is not repeated within 2 s (100 times its
    /// cost), whatever the interval; a cheap one follows the interval.
    func testDumpsAreSpacedByTheirCost() {
        let start = ContinuousClock.now
        let expensive = ConntrackSampler.Sample(summary: ConntrackSummary(entries: 0, offloaded: 0, hardwareOffloaded: 0,
                                                                          count: 0, max: 0),
                                                at: start, cost: .milliseconds(20))
        XCTAssertEqual(ConntrackSampler.nextDump(after: expensive, interval: .seconds(1), costFactor: 100), start + .seconds(2))
        var cheap = expensive
        cheap.cost = .microseconds(100)
        XCTAssertEqual(ConntrackSampler.nextDump(after: cheap, interval: .seconds(1), costFactor: 100), start + .seconds(1))
    }
}
