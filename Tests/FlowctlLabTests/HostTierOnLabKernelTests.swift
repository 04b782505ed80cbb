import FlowctlTesting
import Foundation
import XCTest

/// The host tier must pass on any kernel. scripts/test runs it on the
/// development machine (no flowtables, no 802.1Q); this runs the same
/// tests inside the lab kernel, which has both, as a Debian or Ubuntu host
/// does: each probes what the kernel offers and checks that branch.
final class HostTierOnLabKernelTests: XCTestCase {
    func testHostTierPassesOnAKernelWithFlowtablesAnd8021Q() throws {
        let runner = CommandLine.arguments[0]
        for suite in ["DiscoveryTests", "NftablesHostTests", "CLIHostTests", "ServiceHostTests"] {
            let result = try Lab.run([runner, "FlowctlHostTests.\(suite)"])
            XCTAssertEqual(result.status, 0, "FlowctlHostTests.\(suite) failed on the lab kernel:\n\(result)")
            let output = result.stdout + result.stderr
            let executed = output.split(separator: "\n").compactMap { line -> Int? in
                guard let range = line.range(of: "Executed ") else { return nil }
                return Int(line[range.upperBound...].prefix { $0.isNumber })
            }
            XCTAssertGreaterThan(executed.max() ?? 0, 0, "FlowctlHostTests.\(suite) ran no test in the lab:\n\(output)")
            XCTAssertFalse(output.contains("error:"), output)
        }
    }
}
