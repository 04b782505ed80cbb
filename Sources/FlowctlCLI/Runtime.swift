import ArgumentParser
import FlowctlCore
import FlowctlDaemon
import FlowctlLinux
import Foundation

/// The kernel edges a command works with (the daemon's). Real ones by
/// default; tests swap in the fakes from FlowctlTesting.
public typealias Edges = Daemon.Edges

extension Daemon.Edges {
    public static func linux() -> Edges {
        Edges(topology: RtnetlinkTopologySource(), backend: NftablesBackend(), conntrack: ConntrackReader())
    }
}

/// Process-wide hooks for tests: where output goes and which edges to use.
/// nonisolated(unsafe): tests set them before a command runs, serially, and
/// a command reads them from its one thread (signal watches only stop a
/// generator, they never print).
public enum Runtime {
    nonisolated(unsafe) public static var makeEdges: () -> Edges = Edges.linux
    nonisolated(unsafe) public static var standardOutput: (String) -> Void = { text in
        // A reader that went away (`| head`) loses the text, not the command's cleanup.
        try? FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
    }
    /// Whether enable/disable/status look for a running daemon first (tests
    /// with fakes turn this off).
    nonisolated(unsafe) public static var useDaemon = true
    nonisolated(unsafe) public static var standardError: (String) -> Void = { text in
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
}

func say(_ line: String = "") { Runtime.standardOutput(line + "\n") }
func warn(_ line: String) { Runtime.standardError("warning: " + line + "\n") }

/// Runs a command body: any error becomes one line on stderr and exit 1.
/// Nothing is applied before the last step of a command, so the host is as
/// it was.
func guarded(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        Runtime.standardError("flowctl: error: \(oneLine(error))\n")
        throw ExitCode.failure
    }
}

/// The same for async commands (the daemon).
func guarded(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        Runtime.standardError("flowctl: error: \(oneLine(error))\n")
        throw ExitCode.failure
    }
}

func oneLine(_ error: any Error) -> String {
    var text = "\(error)"
    if let kernel = error as? KernelError, kernel.isPermission, kernel.hint == nil {
        text += " (flowctl needs root or CAP_NET_ADMIN)"
    }
    if let batch = error as? BatchError, batch.error.isPermission, batch.error.hint == nil {
        text += " (flowctl needs root or CAP_NET_ADMIN)"
    }
    return text.split(separator: "\n").joined(separator: "; ")
}

/// Options every command that touches state takes.
struct StateOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Where the intent is stored (also FLOWCTL_STATE_DIR).", valueName: "dir"))
    var stateDir: String?

    @Option(name: .long, help: ArgumentHelp(
        "Control socket of a running daemon (also FLOWCTL_CONTROL_SOCKET).", valueName: "path"))
    var controlSocket: String?

    var socketPath: String {
        controlSocket ?? ProcessInfo.processInfo.environment["FLOWCTL_CONTROL_SOCKET"]
            ?? ControlProtocol.defaultSocketPath
    }

    /// Sends the request to a running daemon; nil when none listens (the
    /// command then works one-shot). The daemon of this network namespace
    /// answers even when the socket path differs (one writer per host).
    /// A refusal by the daemon is an error.
    func daemon(_ request: ControlRequest) throws -> ControlResponse? {
        guard Runtime.useDaemon else { return nil }
        var request = request
        request.networkNamespace = currentNetworkNamespace()
        var answer = try ControlClient.send(request, socketPath: socketPath)
        if let refused = answer?.servesNetworkNamespace {
            // A socket path reaches across network namespaces: that daemon
            // serves another host; this one has none (or it answers below).
            Runtime.standardError("note: the daemon on \(socketPath) serves another network namespace (\(refused)); this command works in its own\n")
            answer = nil
        }
        if answer == nil, let other = try ControlClient.send(request, to: .daemon) {
            Runtime.standardError("note: no daemon listens on \(socketPath); the daemon of this network namespace answered (\(other.daemon?.summary ?? "it does not say which"))\n")
            answer = other
        }
        guard let response = answer else { return nil }
        guard response.ok else { throw ControlClientError.daemon(response.error ?? "the daemon refused the request") }
        return response
    }

    var store: IntentStore {
        let directory = stateDir ?? ProcessInfo.processInfo.environment["FLOWCTL_STATE_DIR"]
            ?? IntentStore.defaultDirectory
        return IntentStore(directory: directory)
    }

    func validate() throws {
        if let stateDir, stateDir.isEmpty { throw ValidationError("--state-dir must not be empty") }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for programs.")
    var json = false
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    say(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func validateInterfaceName(_ name: String, what: String) throws {
    guard Planner.isValidInterfaceName(name) else {
        throw ValidationError("\(what) \(name.debugDescription) is not a valid interface name (1 to 15 bytes, no '/', ':' or white space)")
    }
}
