import Foundation

/// Runs programs for the host and lab test tiers: the kernel work always
/// happens in a child process (inside `ip netns exec` or the lab kernel),
/// never by setns from the test process.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

public enum Subprocess {
    /// Runs `argv` (argv[0] searched in PATH), feeding `input` on stdin.
    @discardableResult
    public static func run(_ argv: [String], input: String? = nil, environment: [String: String]? = nil)
        throws -> ProcessResult
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inPipe
        try process.run()
        // Drain both pipes concurrently so a chatty child never blocks.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try? inPipe.fileHandleForWriting.close()
        process.waitUntilExit()
        group.wait()
        return ProcessResult(status: process.terminationStatus,
                             stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }

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
public final class TestNamespace: @unchecked Sendable {
    public let name: String
    nonisolated(unsafe) private static var counter = 0

    public init(prefix: String = "flowctl-test") throws {
        Self.counter += 1
        name = "\(prefix)-\(getpid())-\(Self.counter)"
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
