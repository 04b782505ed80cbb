import FlowctlCore
import Foundation
import Glibc
import Logging

/// The daemon's control socket: a Unix stream socket, mode 0660, that only
/// root, the daemon's own user, or members of the configured group may use
/// (checked with SO_PEERCRED / SO_PEERGROUPS on every connection, not only
/// by the file mode). The same protocol is served on the abstract address
/// `@flowctl/daemon` of the daemon's network namespace, where the CLI finds
/// the daemon whatever socket path either was given.
///
/// Connections are served by a ConnectionServer on a thread of its own;
/// each whole request is handed to the event loop (`dispatch`), which
/// answers when it has run it. A slow, idle or vanished client costs the
/// event loop nothing.
public final class ControlServer: Sendable {
    public let path: String
    let allowedGroup: gid_t?
    let logger: Logger
    let listeners: [Int32]

    public enum SetupError: Error, CustomStringConvertible {
        case alreadyRunning(String)
        public var description: String {
            switch self {
            case .alreadyRunning(let text): text
            }
        }
    }

    public init(path: String, group: String?, logger: Logger) throws {
        self.path = path
        self.logger = logger
        if let group {
            guard let entry = getgrnam(group) else { throw KernelError.system("control group \(group)", ENOENT) }
            allowedGroup = entry.pointee.gr_gid
        } else {
            allowedGroup = nil
        }
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o755])
        // A live daemon answers; a stale socket file is replaced.
        if let running = try? ControlClient.send(ControlRequest(command: .status), to: .path(path), timeoutSeconds: 2) {
            throw SetupError.alreadyRunning("another flowctl daemon is listening on \(path)\(running.daemon.map { " (pid \($0.pid))" } ?? "")")
        }
        unlink(path)
        // The namespace's address: taken means another daemon runs here.
        let abstract: Int32
        do { abstract = try UnixSocket.listen(.daemon) } catch {
            guard error.errno == EADDRINUSE else { throw error }
            let running = try? ControlClient.send(ControlRequest(command: .status), to: .daemon, timeoutSeconds: 2)
            throw SetupError.alreadyRunning("another flowctl daemon runs in this network namespace"
                + (running?.daemon.map { " (\($0.summary))" } ?? " (it does not answer on \(UnixSocketAddress.daemon))"))
        }
        // Bound under a temporary name and published (renamed into place)
        // once the daemon runs: a client that sees the socket can rely on the
        // daemon handling SIGTERM and requests.
        let staging = path + ".starting"
        unlink(staging)
        let previousMask = umask(0o117)
        let fd: Int32
        do { fd = try UnixSocket.listen(.path(staging)) } catch {
            umask(previousMask)
            close(abstract)
            throw error
        }
        umask(previousMask)
        // The group's members must be able to connect: a socket they cannot
        // reach is an error, not a silent root-only daemon.
        var failed: KernelError?
        if let group, let allowedGroup, chown(staging, getuid(), allowedGroup) != 0 {
            let code = errno
            failed = KernelError.system("give the control socket \(path) to group \(group)", code,
                                        hint: code == EPERM ? "the daemon needs CAP_CHOWN or to be a member of \(group) (SupplementaryGroups=\(group) in its unit)" : nil)
        } else if chmod(staging, 0o660) != 0 {
            failed = KernelError.system("set the mode of the control socket \(path)", errno)
        }
        if let failed {
            close(fd)
            close(abstract)
            unlink(staging)
            throw failed
        }
        listeners = [fd, abstract]
    }

    /// Makes the socket reachable at its path and starts serving: each
    /// authorised, well-formed request goes to `dispatch` with the way to
    /// answer it.
    public func start(dispatch: @escaping @Sendable (ControlRequest, ControlReply) -> Void) throws -> ConnectionServer {
        let allowedGroup = self.allowedGroup
        let logger = self.logger
        let handlers = ConnectionServer.Handlers(
            frame: { received, ended in
                if let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                    return .complete(received[..<newline])
                }
                return ended && !received.isEmpty ? .complete(received) : .incomplete
            },
            handle: { data, peer, reply in
                let send: @Sendable (ControlResponse) -> Void = { reply.send(ControlServer.encode($0)) }
                let answer = ControlReply(connection: reply)
                guard let peer, ControlServer.authorized(peer, allowedGroup: allowedGroup) else {
                    logger.warning("control request refused", metadata: ["peer": "\(peer.map { "\($0)" } ?? "unknown")"])
                    return send(ControlResponse(ok: false, error: "permission denied: root or the daemon's control group only"))
                }
                guard let request = try? JSONDecoder().decode(ControlRequest.self, from: data) else {
                    return send(ControlResponse(ok: false, error: "malformed control request (expected one JSON object per line)"))
                }
                guard request.version == ControlProtocol.version else {
                    return send(ControlResponse(ok: false, error: "unsupported control protocol version \(request.version) (daemon speaks \(ControlProtocol.version))"))
                }
                logger.debug("control request", metadata: ["peer": "\(peer)", "command": "\(request.command.rawValue)"])
                dispatch(request, answer)
            },
            refusal: { why in ControlServer.encode(ControlResponse(ok: false, error: "the daemon closed the connection: \(why)")) })
        var limits = ConnectionServer.Limits()
        limits.maxRequestBytes = ControlProtocol.maxRequestBytes
        let server = ConnectionServer(name: "flowctl-control", listeners: listeners, limits: limits,
                                      handlers: handlers, logger: logger)
        guard rename(path + ".starting", path) == 0 else { throw KernelError.system("publish \(path)", errno) }
        server.start()
        return server
    }

    deinit {
        // A daemon that failed before it ran leaves no staging socket behind.
        unlink(path + ".starting")
    }

    /// Removes the socket file (the listeners close with their server).
    public func unpublish() {
        unlink(path + ".starting")
        unlink(path)
    }

    public static func encode(_ response: ControlResponse) -> Data {
        var payload = (try? JSONEncoder().encode(response)) ?? Data(#"{"version":1,"ok":false,"error":"unencodable response"}"#.utf8)
        payload.append(UInt8(ascii: "\n"))
        return payload
    }

    /// Whether the peer may control the daemon.
    static func authorized(_ peer: ConnectionServer.Peer, allowedGroup: gid_t?) -> Bool {
        if peer.uid == 0 || peer.uid == geteuid() { return true }
        guard let allowedGroup else { return false }
        return peer.gid == allowedGroup || peer.groups.contains(allowedGroup)
    }
}

/// How the event loop answers a control request, once, from its thread:
/// a response, or one already encoded (many `status` requests of one
/// wake-up share one encoding).
public struct ControlReply: Sendable {
    let connection: ConnectionServer.Reply
    public func send(_ response: ControlResponse) { connection.send(ControlServer.encode(response)) }
    public func send(encoded: Data) { connection.send(encoded) }
}
