import Foundation
import Synchronization

@_exported import FlowctlProcess

/// The host and lab test tiers run programs through FlowctlProcess's
/// Subprocess: the kernel work always happens in a child process (inside
/// `ip netns exec` or the lab kernel), never by setns from the test process.
extension Subprocess {
    /// Path of an executable product of this package (flowctl, flowctl-kit),
    /// next to the running test bundle in .build/<config>/.
    public static func product(_ name: String) -> String {
        if let override = ProcessInfo.processInfo.environment["FLOWCTL_BIN_DIR"] {
            return override + "/" + name
        }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // swift test runs .build/<triple>/debug/flowctlPackageTests.xctest
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            dir.deleteLastPathComponent()
        }
        return name
    }
}

/// A fresh network namespace for one test, deleted (with everything in it)
/// when the test ends.
public final class TestNamespace: Sendable {
    public let name: String
    private static let counter = Atomic<Int>(0)

    public init(prefix: String = "flowctl-test") throws {
        name = "\(prefix)-\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let result = try Subprocess.run(["ip", "netns", "add", name])
        guard result.succeeded else { throw TestNamespaceError.create(name, result.stderr) }
        _ = try? Subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    /// Runs argv inside the namespace.
    @discardableResult
    public func run(_ argv: [String], input: String? = nil, environment: [String: String]? = nil)
        throws -> ProcessResult
    {
        try Subprocess.run(["ip", "netns", "exec", name] + argv, input: input, environment: environment)
    }

    /// Runs a shell script inside the namespace; throws when it fails.
    @discardableResult
    public func sh(_ script: String) throws -> ProcessResult {
        let result = try run(["sh", "-ec", script])
        guard result.succeeded else { throw TestNamespaceError.command(script, result.description) }
        return result
    }

    deinit { _ = try? Subprocess.run(["ip", "netns", "del", name]) }
}

public enum TestNamespaceError: Error, CustomStringConvertible {
    case create(String, String)
    case command(String, String)
    public var description: String {
        switch self {
        case .create(let name, let err): "cannot create network namespace \(name): \(err) (the host tier needs root)"
        case .command(let script, let out): "command failed in namespace: \(script)\n\(out)"
        }
    }
}
