import Foundation
import FlowctlTesting
import XCTest

/// A short `flowctl bench` of the quickstart scenario, in the lab kernel
/// (flowctl re-runs itself there because this host has no flowtables).
/// Checks that it runs, reports and cleans up; it does not judge speed.
final class BenchLabTests: XCTestCase {
    /// `flowctl bench SCENARIO` from the repository, one repetition.
    func bench(_ scenario: String, duration: Int, output: String) throws -> ProcessResult {
        try Subprocess.run(["sh", "-c", "cd \"$0\" && exec \"$@\"", Lab.repoRoot.path, Subprocess.product("flowctl"), "bench",
                            scenario, "--repetitions", "1", "--duration", "\(duration)", "--output", output])
    }

    func testQuickstartBenchRunsAndReports() throws {
        let output = Lab.repoRoot.appendingPathComponent(".build/bench-test-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try bench("Scenarios/quickstart.toml", duration: 3, output: output)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("running in the lab kernel"), result.stderr)
        XCTAssertTrue(result.stdout.contains("\n  slow "), result.stdout)
        XCTAssertTrue(result.stdout.contains("\n  flowctl "), result.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: output)
        XCTAssertEqual(files.filter { $0.hasSuffix(".svg") }.count, 2, "the scenario's chart and the summary chart")
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
    }

    /// Forwarding only, with tap guests held open: pktgen injects the VM's
    /// frames at the host side of its tap, the sink counts and drops them
    /// at the other tap's egress, in every mode, peers' files included.
    func testInjectedTapScenarioMeasuresTheHost() throws {
        let output = Lab.repoRoot.appendingPathComponent(".build/bench-taps-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try bench("Scenarios/taps.toml", duration: 1, output: output)
        XCTAssertEqual(result.status, 0, "\(result)")
        let json = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: output).first { $0.hasSuffix(".json") })
        let document = try XCTUnwrap(JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: output + "/" + json))) as? [String: Any])
        let metadata = try XCTUnwrap(document["metadata"] as? [String: Any])
        XCTAssertTrue((metadata["kernel"] as? String ?? "").hasPrefix("6.12"), "\(metadata)")
        XCTAssertEqual(metadata["cpus"] as? Int, 1)
        let scenario = try XCTUnwrap((document["scenarios"] as? [[String: Any]])?.first)
        let runs = try XCTUnwrap((scenario["result"] as? [String: Any])?["runs"] as? [[String: Any]])
        XCTAssertEqual(Set(runs.compactMap { $0["mode"] as? String }), [
            "slow", "flowctl", "nft:Scenarios/taps-handwritten.nft", "nft:Scenarios/peers/taps-firewall4.nft",
            "nft:Scenarios/peers/taps-firewalld.nft", "nft:Scenarios/peers/taps-kindnet.nft"])
        for run in runs {
            // The sink counts only what crossed the host: never more than injected.
            XCTAssertGreaterThan(run["packetsReceived"] as? Double ?? 0, 1000, "\(run)")
            XCTAssertLessThanOrEqual(run["packetsReceived"] as? Double ?? 0, run["packetsSent"] as? Double ?? 0, "\(run)")
        }
        // All 4 flows offloaded: pktgen's udp_src_max is exclusive (it wraps
        // on reaching it), so the generator asks for one past the last port;
        // with the inclusive value only 3 flows would exist.
        let fast = try XCTUnwrap(runs.first { $0["mode"] as? String == "flowctl" })
        XCTAssertEqual(fast["offloadedFraction"] as? Double, 1.0, "\(fast)")
        let summaries = try XCTUnwrap(scenario["summaries"] as? [[String: Any]])
        XCTAssertEqual(Set(summaries.compactMap { $0["primaryMetric"] as? String }), ["packetsPerSecond"])
        XCTAssertNil(summaries.first?["gigabitsPerSecond"], "a figure that means nothing for UDP is left out")
    }
}
