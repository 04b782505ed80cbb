import Foundation
import FlowctlTesting
import XCTest

/// Runs commands in the lab kernel through scripts/lab (a User-Mode Linux
/// 6.12 with flowtables, 802.1Q and netdevsim, booted per call). The lab tier never
/// skips: when the lab cannot boot, the test fails and says why.
enum Lab {
    /// The repository's root: Tests/FlowctlLabTests/Lab.swift is three levels down.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var script: String { repoRoot.appendingPathComponent("scripts/lab").path }

    /// scripts/lab's status when the lab itself failed (no kernel, crash, timeout).
    static let labFailure: Int32 = 125

    /// Runs `argv` inside the lab from the repository's root and returns
    /// its result. Throws (so the test fails, never skips) when the lab
    /// itself did not work: no kernel, crash, timeout, not root.
    static func run(_ argv: [String], timeout: Int = 300, environment: [String: String] = [:]) throws -> ProcessResult {
        let result = try runRaw(argv, timeout: timeout, environment: environment)
        if result.status == labFailure { throw LabError(command: argv, result: result) }
        return result
    }

    /// Like run, but returns scripts/lab's result whatever it is.
    static func runRaw(_ argv: [String], timeout: Int, environment: [String: String] = [:]) throws -> ProcessResult {
        // cd so relative paths work; scripts/lab passes FLOWCTL and FLOWCTL_* variables in.
        try Subprocess.run(
            ["sh", "-c", "cd \"$0\" && exec \"$@\"", repoRoot.path, script, "--timeout", String(timeout), "--"] + argv,
            environment: environment)
    }
}

struct LabError: Error, CustomStringConvertible {
    var command: [String]
    var result: ProcessResult
    var description: String {
        """
        the lab kernel could not run \(command.joined(separator: " ")) (scripts/lab exited \(Lab.labFailure)); \
        the lab tier needs root and the lab kernel (see scripts/lab and ../shared/lab2/README.md)
        \(result)
        """
    }
}
