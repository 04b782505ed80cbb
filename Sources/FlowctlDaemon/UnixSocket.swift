import FlowctlCore
import Foundation
import Glibc

/// A Unix stream socket's address: a file, or a name in the abstract
/// namespace, which belongs to the network namespace (unix(7)): what the
/// daemon uses to be found, and to be alone, in "this host's" namespace
/// whatever paths it was given.
public enum UnixSocketAddress: Hashable, Sendable, CustomStringConvertible {
    case path(String)
    case abstract(String)

    /// The daemon's control endpoint in this network namespace.
    public static let daemon = UnixSocketAddress.abstract("flowctl/daemon")
    /// Held by whoever changes flowctl's table in this network namespace.
    public static let writer = UnixSocketAddress.abstract("flowctl/writer")

    public var description: String {
        switch self {
        case .path(let path): path
        case .abstract(let name): "@" + name
        }
    }

    /// sockaddr_un and its length; nil when the name does not fit.
    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let (bytes, leadingNUL): ([UInt8], Bool) = switch self {
        case .path(let path): (Array(path.utf8), false)
        case .abstract(let name): (Array(name.utf8), true)
        }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let offset = leadingNUL ? 1 : 0
        guard !bytes.isEmpty, offset + bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[offset + index] = byte }
        }
        // Abstract names are exactly as long as given (no trailing NULs).
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length = leadingNUL ? socklen_t(pathOffset + 1 + bytes.count) : socklen_t(MemoryLayout<sockaddr_un>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

public enum UnixSocket {
    /// A bound, listening, non-blocking, close-on-exec socket.
    public static func listen(_ address: UnixSocketAddress, backlog: Int32 = SOMAXCONN) throws(KernelError) -> Int32 {
        try open(address, nonBlocking: true) { fd, sockaddr, length in
            if bind(fd, sockaddr, length) != 0 { return "bind \(address)" }
            return Glibc.listen(fd, backlog) == 0 ? nil : "listen on \(address)"
        }
    }

    /// A connected, close-on-exec socket, or the connect error. `nonBlocking`:
    /// a listener with a full backlog is EAGAIN, not a wait.
    public static func connect(_ address: UnixSocketAddress, nonBlocking: Bool = false) throws(KernelError) -> Int32 {
        try open(address, nonBlocking: nonBlocking) { fd, sockaddr, length in
            Glibc.connect(fd, sockaddr, length) == 0 ? nil : "connect to \(address)"
        }
    }

    /// Sends one datagram to a datagram socket (the service manager's
    /// notification socket), without blocking.
    public static func sendDatagram(_ bytes: [UInt8], to address: UnixSocketAddress) throws(KernelError) {
        let fd = try open(address, type: SOCK_DGRAM, nonBlocking: true) { fd, sockaddr, length in
            Glibc.connect(fd, sockaddr, length) == 0 ? nil : "connect to \(address)"
        }
        defer { close(fd) }
        let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == bytes.count else { throw KernelError.system("send to \(address)", sent < 0 ? errno : EMSGSIZE) }
    }

    /// A new socket on which `setUp` succeeds (returns nil), or the error of
    /// the step it names, the socket closed.
    private static func open(_ address: UnixSocketAddress, type: __socket_type = SOCK_STREAM, nonBlocking: Bool,
                             _ setUp: (Int32, UnsafePointer<sockaddr>, socklen_t) -> String?) throws(KernelError) -> Int32 {
        let flags = Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(AF_UNIX, flags, 0)
        guard fd >= 0 else { throw KernelError.system("socket for \(address)", errno) }
        guard let failed = address.withSockaddr({ setUp(fd, $0, $1) }) else {
            close(fd)
            throw KernelError.system("socket address \(address)", ENAMETOOLONG)
        }
        if let operation = failed {
            let code = errno
            close(fd)
            throw KernelError.system(operation, code)
        }
        return fd
    }
}
