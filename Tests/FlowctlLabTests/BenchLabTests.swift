import Foundation
import FlowctlTesting
import XCTest

/// A short `flowctl bench` of the quickstart scenario, in the lab kernel
/// (flowctl re-runs itself there because this host has no flowtables).
/// Checks that it runs, reports and cleans up; it does not judge speed.
final class BenchLabTests: XCTestCase {
    func testQuickstartBenchRunsAndReports() throws {
        let flowctl = Subprocess.product("flowctl")
        let output = Lab.repoRoot.appendingPathComponent(".build/bench-test-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try Subprocess.run(["sh", "-c", "cd \"$0\" && exec \"$@\"", Lab.repoRoot.path, flowctl, "bench",
                                         "Scenarios/quickstart.toml", "--repetitions", "1", "--duration", "3",
                                         "--output", output])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("running in the lab kernel"), result.stderr)
        XCTAssertTrue(result.stdout.contains("\n  slow "), result.stdout)
        XCTAssertTrue(result.stdout.contains("\n  flowctl "), result.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: output)
        XCTAssertEqual(files.filter { $0.hasSuffix(".svg") }.count, 1)
        let json = try XCTUnwrap(files.first { $0.hasSuffix(".json") })
        let document = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/" + json))) as? [String: Any])
        let scenarios = try XCTUnwrap(document["scenarios"] as? [[String: Any]])
        let runs = try XCTUnwrap((scenarios.first?["result"] as? [String: Any])?["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.compactMap { $0["mode"] as? String }.sorted(), ["flowctl", "slow"])
        for run in runs {
            XCTAssertGreaterThan(run["packetsReceived"] as? Double ?? 0, 0, "\(run)")
            XCTAssertLessThanOrEqual(run["packetsReceived"] as? Double ?? 0, run["packetsSent"] as? Double ?? 0)
        }
        let fast = try XCTUnwrap(runs.first { $0["mode"] as? String == "flowctl" })
        XCTAssertGreaterThan(fast["offloadedFraction"] as? Double ?? 0, 0, "flows were offloaded in the flowctl run")
        // Nothing left behind on this host.
        XCTAssertFalse(try Subprocess.run(["ip", "netns", "list"]).stdout.contains("fb-"))
    }
}
