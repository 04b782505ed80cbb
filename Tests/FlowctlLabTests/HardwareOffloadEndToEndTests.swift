import XCTest

/// Tests/lab/hw-offload-e2e.sh in the lab kernel: netdevsim NICs that offer
/// hw-tc-offload but refuse `flags offload`. `enable --hw-offload auto`
/// falls back to a software flowtable in the same command and says why;
/// `--hw-offload on` is one error line naming the devices and leaves no
/// table; under the daemon, hotplug after the fallback neither asks for
/// hardware again nor recreates the flowtable (same handle).
final class HardwareOffloadEndToEndTests: XCTestCase {
    func testRefusedHardwareOffloadFallsBackToSoftware() throws {
        try Lab.runEndToEnd("Tests/lab/hw-offload-e2e.sh", passLine: "PASS hw-offload-e2e", timeout: 300)
    }
}
