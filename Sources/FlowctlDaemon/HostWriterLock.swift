import FlowctlCore
import CFlowctlNet
import Foundation
import Glibc

/// One writer of flowctl's table per host (per network namespace): the
/// daemon for its whole life, a one-shot command for the length of its
/// change. Held as a listening socket on the abstract address
/// `@flowctl/writer`, which belongs to the network namespace: it goes
/// with the process (no stale lock after `kill -9`), and a contender
/// learns who holds it from the credentials of a connection (SO_PEERCRED
/// of a listener that never accepts names the process that listened).
public final class HostWriterLock: Sendable {
    let fd: Int32

    public enum Failure: Error, CustomStringConvertible {
        case held(by: String)
        case system(KernelError)
        public var description: String {
            switch self {
            case .held(let holder): "another flowctl process is changing this host's fast path (\(holder)); one writer at a time"
            case .system(let error): "the host writer lock \(UnixSocketAddress.writer): \(error)"
            }
        }
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Takes the lock, waiting up to `wait` for a holder that lets go (a
    /// one-shot command finishing); a holder that stays is named.
    public static func acquire(wait: Duration = .seconds(10)) throws(Failure) -> HostWriterLock {
        let deadline = ContinuousClock.now + wait
        while true {
            do {
                return HostWriterLock(fd: try UnixSocket.listen(.writer, backlog: 0))
            } catch {
                guard error.errno == EADDRINUSE else { throw .system(error) }
            }
            if ContinuousClock.now >= deadline { throw .held(by: holder() ?? "it does not say who") }
            usleep(20_000)
        }
    }

    /// "pid 123: flowctl daemon --state-dir ..." for whoever holds the lock.
    public static func holder() -> String? {
        guard let fd = try? UnixSocket.connect(.writer, nonBlocking: true) else { return nil }
        defer { close(fd) }
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard flowctl_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        let commandLine = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")))
            .map { String(decoding: $0, as: UTF8.self).split(separator: "\0").joined(separator: " ") }
        return "pid \(pid)" + (commandLine.map { $0.isEmpty ? "" : ": \($0)" } ?? "")
    }
}

/// This process's network namespace, as the kernel names it
/// ("net:[4026531840]"): the daemon reports it, and a CLI in another
/// namespace does not take that daemon's answer for its own host.
public func currentNetworkNamespace() -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
}
