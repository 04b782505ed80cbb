import FlowctlCore
import Foundation
import Glibc

/// The control protocol between `flowctl enable/disable/status` and a
/// running `flowctl daemon`: one JSON object per line over a Unix stream
/// socket, one request and one response per connection. Versioned: a
/// daemon answers a request of another major version with an error.
public enum ControlProtocol {
    public static let version = 1
    public static let defaultSocketPath = "/run/flowctl/control.sock"
    /// Requests larger than this are refused.
    public static let maxRequestBytes = 64 * 1024
}

public struct ControlRequest: Codable, Sendable, Hashable {
    public enum Command: String, Codable, Sendable {
        case enable, disable, status, resync, reevaluate
    }
    public var version: Int
    public var command: Command
    public var bridge: String?
    public var uplinks: [String]?
    public var hwOffload: HWOffloadMode?
    /// `reevaluate`: enabled bridges and ports of enabled bridges (none: all).
    public var bridges: [String]?
    public var ports: [String]?
    /// `enable`: devices (or patterns) the routes lead to that are not uplinks.
    public var excludedUplinks: [String]?
    /// The client's network namespace ("net:[4026531840]"): a daemon that
    /// serves another one refuses (a socket path reaches across namespaces).
    public var networkNamespace: String?

    public init(command: Command, bridge: String? = nil, uplinks: [String]? = nil, hwOffload: HWOffloadMode? = nil,
                bridges: [String]? = nil, ports: [String]? = nil) {
        version = ControlProtocol.version
        self.command = command
        self.bridge = bridge
        self.uplinks = uplinks
        self.hwOffload = hwOffload
        self.bridges = bridges
        self.ports = ports
    }
}

public struct DaemonInfo: Codable, Sendable, Hashable {
    public var pid: Int32
    public var uptimeSeconds: Double
    public var statistics: SyncEngine.Statistics
    /// Where it keeps its intent and listens (absent from older daemons).
    public var stateDir: String?
    public var controlSocket: String?
    /// The network namespace it serves ("net:[4026531840]").
    public var networkNamespace: String?
    /// Bridges its configuration file declares, and that file.
    public var declaredBridges: [String]?
    public var configurationFile: String?

    /// "pid 123, control socket /run/flowctl/control.sock, state dir /var/lib/flowctl"
    public var summary: String {
        (["pid \(pid)"] + [controlSocket.map { "control socket \($0)" }, stateDir.map { "state dir \($0)" }].compactMap { $0 })
            .joined(separator: ", ")
    }
}

public struct ControlResponse: Codable, Sendable {
    public var version: Int
    public var ok: Bool
    public var error: String?
    public var intent: Intent?
    public var outcome: ReconcileOutcome?
    public var table: KernelTable?
    public var conntrack: ConntrackSummary?
    public var conntrackError: String?
    /// Lines describing what this request changed.
    public var changes: [String]?
    public var daemon: DaemonInfo?
    /// `reevaluate`: what was done.
    public var reevaluation: ReevaluationRecord?
    /// Set when refused because the client is in another network namespace:
    /// the one this daemon serves.
    public var servesNetworkNamespace: String?

    public init(ok: Bool, error: String? = nil) {
        version = ControlProtocol.version
        self.ok = ok
        self.error = error
    }
}

public enum ControlClientError: Error, CustomStringConvertible {
    case refused(String)
    case protocolError(String)
    case daemon(String)

    public var description: String {
        switch self {
        case .refused(let why): "the flowctl daemon refused the connection: \(why)"
        case .protocolError(let why): "unexpected answer from the flowctl daemon: \(why)"
        case .daemon(let message): message
        }
    }
}

/// The CLI's side: nil when no daemon listens (the command runs one-shot).
public enum ControlClient {
    public static func send(_ request: ControlRequest, socketPath: String, timeoutSeconds: Int = 30) throws
        -> ControlResponse?
    {
        try send(request, to: .path(socketPath), timeoutSeconds: timeoutSeconds)
    }

    public static func send(_ request: ControlRequest, to address: UnixSocketAddress, timeoutSeconds: Int = 30) throws
        -> ControlResponse?
    {
        let fd: Int32
        do { fd = try UnixSocket.connect(address) } catch {
            switch error.errno {
            case EACCES, EPERM: throw ControlClientError.refused("no permission on \(address) (root or the daemon's control group)")
            default: return nil   // ENOENT, ECONNREFUSED, ENOTDIR: no daemon there
            }
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var payload = try JSONEncoder().encode(request)
        payload.append(UInt8(ascii: "\n"))
        guard writeAll(fd, payload) else { throw ControlClientError.protocolError("write failed: \(String(cString: strerror(errno)))") }
        shutdown(fd, Int32(SHUT_WR))
        let answer = readAll(fd, limit: 64 << 20)
        guard !answer.isEmpty else { throw ControlClientError.refused("it closed the connection without an answer (see the daemon's log)") }
        do {
            let response = try JSONDecoder().decode(ControlResponse.self, from: answer)
            if response.version != ControlProtocol.version {
                throw ControlClientError.protocolError("protocol version \(response.version), expected \(ControlProtocol.version)")
            }
            return response
        } catch let error as ControlClientError {
            throw error
        } catch {
            throw ControlClientError.protocolError("\(error)")
        }
    }
}

/// Writes all of `data` to `fd`, the daemon's one write loop. On a socket
/// through send() with MSG_NOSIGNAL: a peer that closed early is an EPIPE
/// for this call, never a SIGPIPE that ends the process (a client that
/// vanishes must not kill the daemon); on anything else (stderr as a file
/// or a pipe) through write().
func writeAll(_ fd: Int32, _ data: Data) -> Bool {
    data.withUnsafeBytes { raw in
        var offset = 0
        var isSocket = true
        while offset < raw.count {
            var written = isSocket ? send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL)) : -1
            if written < 0 && isSocket && errno == ENOTSOCK { isSocket = false }
            if !isSocket { written = write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}

func readAll(_ fd: Int32, limit: Int) -> Data {
    var data = Data()
    var chunk = [UInt8](repeating: 0, count: 65536)
    while data.count < limit {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        data.append(contentsOf: chunk[0..<count])
        if data.last == UInt8(ascii: "\n") { break }
    }
    return data
}
