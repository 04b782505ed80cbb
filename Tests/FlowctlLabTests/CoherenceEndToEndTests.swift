import XCTest

/// Tests/lab/coherence-e2e.sh in the lab kernel: offloaded flows (UDP and
/// TCP, IPv4 and IPv6) meet rules added later by other tables (inet and
/// bridge family), a port's VLAN move and a MAC move, through one-shot
/// `flowctl reevaluate` and the daemon's automatic re-evaluation; other
/// flows keep flowing; a storm of foreign commits is coalesced.
final class CoherenceEndToEndTests: XCTestCase {
    func testOffloadedFlowsNeverOutliveThePolicyThatAdmittedThem() throws {
        try Lab.runEndToEnd("Tests/lab/coherence-e2e.sh", passLine: "PASS coherence-e2e")
    }

    /// Tests/lab/coherence-kernel-facts.sh: what the kernel answers by itself
    /// (a flowtable device going down, a conntrack entry deleted: flowctl
    /// relies on those) and what it does not (the README's table).
    func testKernelTearsDownWhatFlowctlLeavesToIt() throws {
        try Lab.runEndToEnd("Tests/lab/coherence-kernel-facts.sh", passLine: "PASS coherence-kernel-facts")
    }
}
