import Foundation
import FlowctlTesting
import XCTest

/// Runs commands in the lab kernel through scripts/lab (a User-Mode Linux
/// 6.12 with flowtables and 802.1Q, booted per call). The lab tier never
/// skips: when the lab cannot boot, the test fails and says why.
enum Lab {
    /// The repository's root: Tests/FlowctlLabTests/Lab.swift is three levels down.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var runner: String { repoRoot.appendingPathComponent("scripts/lab").path }

    /// scripts/lab's status when the lab itself failed (no kernel, crash, timeout).
    static let labFailure: Int32 = 125

    /// Runs `argv` inside the lab from the repository's root and returns its result.
    static func run(_ argv: [String], timeout: Int = 300, environment: [String: String] = [:]) throws -> ProcessResult {
        // scripts/lab passes FLOWCTL and FLOWCTL_* variables in; cd so relative paths work.
        try Subprocess.run(
            ["sh", "-c", "cd \"$0\" && exec \"$@\"", repoRoot.path, runner, "--timeout", String(timeout), "--"] + argv,
            environment: environment)
    }

    /// Fails the test (with the runner's own explanation and the kernel
    /// console tail it prints) when the lab itself did not work.
    static func requireBooted(_ result: ProcessResult, _ what: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        if result.status == labFailure {
            XCTFail("""
                the lab kernel could not run \(what) (scripts/lab exited \(labFailure)); \
                the lab tier needs root and the lab kernel (see scripts/lab and ../shared/lab/README.md)
                \(result)
                """, file: file, line: line)
        }
    }
}
