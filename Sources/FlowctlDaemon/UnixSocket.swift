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

/// A system call that failed: what was done and errno.
public struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

public enum UnixSocket {
    /// A bound, listening, non-blocking, close-on-exec socket.
    public static func listen(_ address: UnixSocketAddress, backlog: Int32 = SOMAXCONN) throws(SocketError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket for \(address)", code: errno) }
        guard let bound = address.withSockaddr({ bind(fd, $0, $1) }) else {
            close(fd)
            throw SocketError(operation: "socket address \(address)", code: ENAMETOOLONG)
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SocketError(operation: "bind \(address)", code: code)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(operation: "listen on \(address)", code: code)
        }
        return fd
    }

    /// A connected, close-on-exec socket, or the connect error. `nonBlocking`:
    /// a listener with a full backlog is EAGAIN, not a wait.
    public static func connect(_ address: UnixSocketAddress, nonBlocking: Bool = false) throws(SocketError) -> Int32 {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        let fd = socket(AF_UNIX, flags, 0)
        guard fd >= 0 else { throw SocketError(operation: "socket for \(address)", code: errno) }
        guard let connected = address.withSockaddr({ Glibc.connect(fd, $0, $1) }) else {
            close(fd)
            throw SocketError(operation: "socket address \(address)", code: ENAMETOOLONG)
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw SocketError(operation: "connect to \(address)", code: code)
        }
        return fd
    }
}
