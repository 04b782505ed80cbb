import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one way flowctl runs other programs (ip, nft, conntrack, ping, the
/// lab, its own generators in namespaces): a child with its output
/// captured, drained concurrently so a chatty child never blocks, argv[0]
/// searched in PATH.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
    public var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// A running child process.
/// @unchecked Sendable: `Process` is not Sendable; the captured output is
/// written by the two drain blocks and read only after `group.wait()` in
/// `finish`, which orders them; signals go through Process's own checks.
public final class ChildProcess: @unchecked Sendable {
    /// What happens to the child's stderr.
    public enum ErrorOutput: Sendable { case capture, inherit, discard }

    let process = Process()
    private let out = Pipe(), err = Pipe()
    private var outData = Data(), errData = Data()
    private let group = DispatchGroup()

    public init(_ argv: [String], input: String? = nil, environment: [String: String]? = nil,
                standardError: ErrorOutput = .capture) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = argv
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = out
        switch standardError {
        case .capture: process.standardError = err
        case .inherit: break
        case .discard: process.standardError = FileHandle.nullDevice
        }
        let inPipe = Pipe()
        process.standardInput = inPipe
        try process.run()
        group.enter()
        DispatchQueue.global().async { [self] in outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        if standardError == .capture {
            group.enter()
            DispatchQueue.global().async { [self] in errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        }
        if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
        try? inPipe.fileHandleForWriting.close()
    }

    public var isRunning: Bool { process.isRunning }
    public var processIdentifier: Int32 { process.processIdentifier }
    public func interrupt() { if process.isRunning { process.interrupt() } }
    public func terminate() { if process.isRunning { process.terminate() } }
    /// SIGKILL: for a child that did not stop when asked.
    public func kill() { if process.isRunning { _ = Glibc.kill(process.processIdentifier, SIGKILL) } }

    /// Waits for the child and its output.
    public func finish() -> ProcessResult {
        process.waitUntilExit()
        group.wait()
        return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }
}

public enum Subprocess {
    /// Runs `argv` to its end, feeding `input` on stdin; `environment` is
    /// added to this process's.
    @discardableResult
    public static func run(_ argv: [String], input: String? = nil, environment: [String: String]? = nil,
                           standardError: ChildProcess.ErrorOutput = .capture) throws -> ProcessResult {
        try ChildProcess(argv, input: input, environment: environment, standardError: standardError).finish()
    }
}
