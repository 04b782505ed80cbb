@testable import FlowctlDaemon
import FlowctlCore
import Foundation
import XCTest

/// /metrics as Prometheus reads it: HELP and TYPE for every metric, the
/// labelled series there from the start at zero, the build, and what the
/// engine and loop record.
final class DaemonMetricsTests: XCTestCase {
    func exposition(_ metrics: DaemonMetrics) -> String { metrics.registry.emitToString() }

    func testEveryMetricHasHelpAndEverySeriesStartsAtZero() throws {
        let text = exposition(DaemonMetrics(version: "1.2.3"))
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        XCTAssertGreaterThanOrEqual(types.count, 18, text)
        for name in types {
            XCTAssertTrue(text.contains("# HELP \(name) "), "\(name) has no HELP text")
        }
        XCTAssertTrue(text.contains("flowctl_build_info{version=\"1.2.3\"} 1"), text)
        for source in DaemonMetrics.eventSources {
            XCTAssertTrue(text.contains("flowctl_events_total{source=\"\(source)\"} 0"), "\(source)\n\(text)")
        }
        for reason in DaemonMetrics.resyncReasons {
            XCTAssertTrue(text.contains("flowctl_resyncs_total{reason=\"\(reason)\"} 0"), reason)
        }
        for cause in DaemonMetrics.causeKinds {
            XCTAssertTrue(text.contains("flowctl_reevaluations_total{cause=\"\(cause)\"} 0"), cause)
        }
        XCTAssertTrue(text.contains("flowctl_flowtable_devices_missing 0"), text)
        XCTAssertTrue(text.contains("flowctl_forward_chain_packets 0"), text)
    }

    /// Every kind of cause the coherence watch names has its series.
    func testCauseKindsCoverEveryCause() {
        let causes: [ReevaluationCause] = [
            .rulesetCommit(pid: 1, tables: []), .route("x"), .eventsLost(source: "rtnetlink"),
            .requested(bridges: [], ports: []),
        ]
        for cause in causes { XCTAssertTrue(DaemonMetrics.causeKinds.contains(cause.kind), cause.kind) }
    }

    func testRecordedValuesReachTheExposition() {
        let metrics = DaemonMetrics()
        metrics.events(.route)
        metrics.resync(reason: .periodic)
        metrics.resync(reason: .eventsLost("rtnetlink events lost: No buffer space available"))
        metrics.reevaluation(kinds: ["nftables", "route"], flows: 12)
        metrics.devices(1001, missing: 2)
        metrics.conntrack(ConntrackSummary(entries: 90, offloaded: 7, hardwareOffloaded: 1, count: 90, max: 100))
        metrics.forwardChain(packets: 4242)
        let text = exposition(metrics)
        for line in ["flowctl_events_total{source=\"route\"} 1", "flowctl_resyncs_total{reason=\"periodic\"} 1", "flowctl_resyncs_total{reason=\"lost\"} 1",
                     "flowctl_reevaluations_total{cause=\"nftables\"} 1", "flowctl_reevaluated_flows_total 12",
                     "flowctl_flowtable_devices 1001", "flowctl_flowtable_devices_missing 2",
                     "flowctl_offloaded_flows 7", "flowctl_offloaded_flows_hardware 1", "flowctl_conntrack_count 90",
                     "flowctl_conntrack_max 100", "flowctl_conntrack_fill_warning 1", "flowctl_forward_chain_packets 4242"] {
            XCTAssertTrue(text.contains(line), "\(line) missing:\n\(text)")
        }
    }
}

extension DaemonMetricsTests {
    /// Examples/prometheus/flowctl-alerts.yml names only metrics the daemon exports.
    func testAlertingRulesNameExportedMetrics() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Examples/prometheus/flowctl-alerts.yml").standardized.path
        let rules = try String(contentsOfFile: path, encoding: .utf8)
        let exported = Set(exposition(DaemonMetrics()).split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }
            .map { String($0.split(separator: " ")[2]) })
        let named = try Regex("flowctl_[a-z_]+")
        let used = Set(rules.matches(of: named).map { String(rules[$0.range]) })
        XCTAssertGreaterThanOrEqual(used.count, 5, "\(used)")
        XCTAssertEqual(used.subtracting(exported), [], "alerting rules name metrics the daemon does not export")
        XCTAssertEqual(rules.components(separatedBy: "- alert: ").count - 1, 5)
    }
}
