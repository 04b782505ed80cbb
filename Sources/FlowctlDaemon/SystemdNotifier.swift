import FlowctlCore
import Foundation
import Glibc

/// The service manager's notification socket (the sd_notify(3) protocol,
/// spoken directly: a datagram of newline-separated assignments to
/// $NOTIFY_SOCKET): readiness, reloading, stopping, status and watchdog
/// pings for `Type=notify` with `WatchdogSec=`. Inactive when systemd did
/// not ask for it (no NOTIFY_SOCKET): every call is then a no-op.
public struct SystemdNotifier: Sendable {
    public let address: UnixSocketAddress?
    /// How often to ping: half of WATCHDOG_USEC, when systemd set one for
    /// this process (WATCHDOG_PID, if given, is ours); nil: no watchdog.
    public let watchdogInterval: Duration?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) {
        if let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty {
            address = socket.hasPrefix("@") ? .abstract(String(socket.dropFirst())) : .path(socket)
        } else {
            address = nil
        }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == pid } ?? true
        if forUs, let microseconds = environment["WATCHDOG_USEC"].flatMap(Int64.init), microseconds > 0 {
            watchdogInterval = .microseconds(microseconds / 2)
        } else {
            watchdogInterval = nil
        }
    }

    public var isActive: Bool { address != nil }

    /// Sends `assignments` ("READY=1", "STATUS=...", several joined by "\n").
    public func notify(_ assignments: [String]) throws(KernelError) {
        guard let address, !assignments.isEmpty else { return }
        try UnixSocket.sendDatagram(Array(assignments.joined(separator: "\n").utf8), to: address)
    }

    /// "MONOTONIC_USEC=..." for RELOADING=1: CLOCK_MONOTONIC now, as systemd reads it.
    public static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}
