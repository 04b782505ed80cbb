import FlowctlCore
import Foundation
import Glibc
import Logging

/// The daemon's control socket: a Unix stream socket, mode 0660, that only
/// root, the daemon's own user, or members of the configured group may use
/// (checked with SO_PEERCRED / SO_PEERGROUPS on every connection, not only
/// by the file mode).
public final class ControlServer {
    public let path: String
    let allowedGroup: gid_t?
    let listener: Int32
    let logger: Logger

    public enum SetupError: Error, CustomStringConvertible {
        case system(String, Int32)
        case alreadyRunning(String)
        public var description: String {
            switch self {
            case .system(let what, let code): "\(what): \(String(cString: strerror(code)))"
            case .alreadyRunning(let path): "another flowctl daemon is listening on \(path)"
            }
        }
    }

    public init(path: String, group: String?, logger: Logger) throws {
        self.path = path
        self.logger = logger
        if let group {
            guard let entry = getgrnam(group) else { throw SetupError.system("control group \(group)", ENOENT) }
            allowedGroup = entry.pointee.gr_gid
        } else {
            allowedGroup = nil
        }
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o755])
        // A live daemon answers; a stale socket file is replaced.
        if (try? ControlClient.send(ControlRequest(command: .status), socketPath: path, timeoutSeconds: 2)) != nil {
            throw SetupError.alreadyRunning(path)
        }
        unlink(path)
        // Bound under a temporary name and published (renamed into place)
        // once the daemon runs: a client that sees the socket can rely on the
        // daemon handling SIGTERM and requests.
        let staging = path + ".starting"
        unlink(staging)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SetupError.system("control socket", errno) }
        guard var address = unixAddress(staging) else {
            close(fd)
            throw SetupError.system("control socket path \(path)", ENAMETOOLONG)
        }
        let previousMask = umask(0o117)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previousMask)
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SetupError.system("bind \(staging)", code)
        }
        if let allowedGroup { chown(staging, getuid(), allowedGroup) }
        chmod(staging, 0o660)
        guard listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw SetupError.system("listen on \(path)", code)
        }
        listener = fd
    }

    /// Makes the socket reachable at its path.
    public func publish() throws {
        guard rename(path + ".starting", path) == 0 else { throw SetupError.system("publish \(path)", errno) }
    }

    deinit {
        unlink(path + ".starting")
        close(listener)
        unlink(path)
    }

    public var pollDescriptor: Int32 { listener }

    /// Whether the peer may control the daemon.
    func authorized(_ fd: Int32) -> (Bool, String) {
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(fd, SOL_SOCKET, PeerCredentials.SO_PEERCRED, &credentials, &length) == 0 else {
            return (false, "no peer credentials")
        }
        let who = "pid \(credentials.pid) uid \(credentials.uid)"
        if credentials.uid == 0 || credentials.uid == geteuid() { return (true, who) }
        guard let allowedGroup else { return (false, who) }
        if credentials.gid == allowedGroup { return (true, who) }
        var groups = [gid_t](repeating: 0, count: 256)
        var groupsLength = socklen_t(groups.count * MemoryLayout<gid_t>.size)
        if getsockopt(fd, SOL_SOCKET, PeerCredentials.SO_PEERGROUPS, &groups, &groupsLength) == 0 {
            let count = Int(groupsLength) / MemoryLayout<gid_t>.size
            if groups.prefix(count).contains(allowedGroup) { return (true, who) }
        }
        return (false, who)
    }

    /// Accepts every pending connection and answers each with `handle`.
    public func serve(_ handle: (ControlRequest) -> ControlResponse) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            defer { close(client) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let (allowed, who) = authorized(client)
            let response: ControlResponse
            if !allowed {
                logger.warning("control request refused", metadata: ["peer": "\(who)"])
                response = ControlResponse(ok: false, error: "permission denied: root or the daemon's control group only")
            } else {
                let data = readAll(client, limit: ControlProtocol.maxRequestBytes)
                if let request = try? JSONDecoder().decode(ControlRequest.self, from: data) {
                    if request.version != ControlProtocol.version {
                        response = ControlResponse(ok: false, error: "unsupported control protocol version \(request.version) (daemon speaks \(ControlProtocol.version))")
                    } else {
                        logger.debug("control request", metadata: ["peer": "\(who)", "command": "\(request.command.rawValue)"])
                        response = handle(request)
                    }
                } else {
                    response = ControlResponse(ok: false, error: "malformed control request (expected one JSON object per line)")
                }
            }
            if var payload = try? JSONEncoder().encode(response) {
                payload.append(UInt8(ascii: "\n"))
                _ = writeAll(client, payload)
            }
        }
    }
}

/// struct ucred (Glibc hides it behind _GNU_SOURCE).
struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    static let SO_PEERCRED: Int32 = 17
    static let SO_PEERGROUPS: Int32 = 59
}
