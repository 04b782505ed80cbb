import Foundation
import FlowctlTesting
import XCTest

/// The lab runner itself: exit status and streams pass through, failures
/// of the lab are reported as such, and the kernel has what the end-to-end
/// tests need.
final class LabRunnerTests: XCTestCase {
    func testExitStatusPassesThrough() throws {
        let ok = try Lab.run(["true"], timeout: 120)
        XCTAssertEqual(ok.status, 0, "\(ok)")

        let failed = try Lab.run(["false"], timeout: 120)
        XCTAssertEqual(failed.status, 1, "\(failed)")
    }

    func testStdoutAndStderrAreSeparatedFromEachOtherAndFromTheKernelConsole() throws {
        let result = try Lab.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout: 120)
        XCTAssertEqual(result.status, 7, "\(result)")
        XCTAssertEqual(result.stdout, "out\n", "\(result)")
        XCTAssertEqual(result.stderr, "err\n", "\(result)")
    }

    func testRunsInTheCallersDirectoryWithFlowctlVariables() throws {
        let result = try Lab.run(
            ["sh", "-c", "pwd; echo \"$FLOWCTL_PROBE\"; echo \"${FLOWCTL_LAB_PROBE-not passed}\""], timeout: 120,
            environment: ["FLOWCTL_PROBE": "passed 'in' $x", "FLOWCTL_LAB_PROBE": "runner's own"])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertEqual(result.stdout, "\(Lab.repoRoot.path)\npassed 'in' $x\nnot passed\n", "\(result)")
    }

    func testATimeoutKillsTheLabAndSaysSo() throws {
        let started = Date()
        let result = try Lab.runRaw(["sleep", "120"], timeout: 3)
        XCTAssertEqual(result.status, Lab.labFailure, "\(result)")
        XCTAssertTrue(result.stderr.contains("timed out after 3s"), "\(result)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 60, "the timeout did not stop the lab")
    }

    func testSeveralLabsRunAtOnce() throws {
        let results = UnsafeResults(count: 3)
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            results.set(i, Result { try Lab.run(["sh", "-c", "ip netns add n\(i) && echo lab \(i); exit \(10 + i)"], timeout: 120) })
        }
        for i in 0..<3 {
            let result = try XCTUnwrap(results.get(i)).get()
            XCTAssertEqual(result.status, Int32(10 + i), "\(result)")
            XCTAssertEqual(result.stdout, "lab \(i)\n", "\(result)")
        }
    }

    func testTheLabHasFlowtables() throws {
        let script = """
            nft add table inet t && \
            nft add flowtable inet t f '{ hook ingress priority 0; devices = { lo }; }' && \
            nft list flowtables
            """
        let result = try Lab.run(["sh", "-c", script], timeout: 120)
        XCTAssertEqual(result.status, 0, "the lab kernel cannot create a flowtable on lo:\n\(result)")
        XCTAssertTrue(result.stdout.contains("flowtable f"), "\(result)")
        XCTAssertTrue(result.stdout.contains("devices = { lo }"), "\(result)")
    }

    /// What Tests/lab/*.sh build on: namespaces, veth, a VLAN-filtering
    /// bridge, 802.1Q devices, conntrack, the flowtable statistics.
    func testTheLabHasWhatTheEndToEndTestsNeed() throws {
        let script = """
            set -e
            ip netns add vm
            ip link add br0 type bridge vlan_filtering 1
            ip link add vnet1 type veth peer name eth0 netns vm
            ip link set vnet1 master br0
            bridge vlan add dev vnet1 vid 10
            bridge vlan add dev br0 vid 10 self
            ip link add link br0 name br0.10 type vlan id 10
            ip -n vm link add link eth0 name eth0.10 type vlan id 10
            conntrack -L >/dev/null 2>&1
            test -r /proc/net/stat/nf_flowtable
            echo ready
            """
        let result = try Lab.run(["sh", "-c", script], timeout: 120)
        XCTAssertEqual(result.status, 0, "a kernel feature the end-to-end tests need is missing in the lab:\n\(result)")
        XCTAssertEqual(result.stdout, "ready\n", "\(result)")
    }
}

/// Results written by concurrentPerform's iterations, each to its own slot.
private final class UnsafeResults: @unchecked Sendable {
    private var slots: [Result<ProcessResult, any Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: Result<ProcessResult, any Error>) { lock.lock(); slots[i] = value; lock.unlock() }
    func get(_ i: Int) -> Result<ProcessResult, any Error>? { lock.lock(); defer { lock.unlock() }; return slots[i] }
}
