import CFlowctlNet
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An address and port: "198.18.1.2:9000" or "[2001:2::2]:9000".
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool { host.contains(":") }

    public init?(_ text: String) {
        let host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard let number = UInt16(port), number > 0 else { return nil }
        var v4 = in_addr(), v6 = in6_addr()
        guard inet_pton(AF_INET, String(host), &v4) == 1 || inet_pton(AF_INET6, String(host), &v6) == 1 else {
            return nil
        }
        self.host = String(host)
        self.port = number
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Calls body with this endpoint as a sockaddr.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            _ = inet_pton(AF_INET6, host, &address.sin6_addr)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, host, &address.sin_addr)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

public struct TrafficError: Error, CustomStringConvertible {
    public var description: String
    init(_ what: String, _ code: Int32 = errno) {
        description = "\(what): \(String(cString: strerror(code)))"
    }
    init(message: String) { description = message }
}

/// CPU time this process used (user + system), from getrusage.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

public struct UDPSendResult: Codable, Sendable, Hashable {
    public var packets: Int
    public var bytes: Int
    public var duration: Double
    public var packetsPerSecond: Double
    /// Sends refused by the kernel (ENOBUFS, EAGAIN, ECONNREFUSED...): not counted as sent.
    public var errors: Int
    /// Packets sent per flow, by source port.
    public var flows: [String: Int]
    public var cpuSeconds: Double
}

public struct UDPSinkResult: Codable, Sendable, Hashable {
    public var packets: Int
    public var bytes: Int
    /// First to last packet.
    public var activeSeconds: Double
    public var packetsPerSecond: Double
    /// Packets received per flow, by source port.
    public var flows: [String: Int]
    public var cpuSeconds: Double
}

/// A UDP sender: `flows` connected sockets (one source port each), sending
/// `size`-byte datagrams in batches of `batch` with sendmmsg, round robin,
/// for `duration` seconds or `count` packets, optionally rate-limited.
public struct UDPSender: Sendable {
    public var target: Endpoint
    public var size: Int
    public var flows: Int
    public var duration: Double
    public var count: Int?
    public var rate: Double?
    public var batch: Int

    public init(target: Endpoint, size: Int, flows: Int, duration: Double, count: Int? = nil, rate: Double? = nil,
                batch: Int = 64) {
        self.target = target
        self.size = size
        self.flows = flows
        self.duration = duration
        self.count = count
        self.rate = rate
        self.batch = batch
    }

    public func run() throws -> UDPSendResult {
        guard size >= 1 && size <= 65507 else { throw TrafficError(message: "size must be 1 to 65507 bytes") }
        guard flows >= 1 && flows <= 4096 else { throw TrafficError(message: "flows must be 1 to 4096") }
        var sockets: [(fd: Int32, port: UInt16)] = []
        defer { sockets.forEach { close($0.fd) } }
        for _ in 0..<flows {
            let fd = socket(target.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw TrafficError("socket") }
            let connected = target.withSockaddr { connect(fd, $0, $1) }
            guard connected == 0 else {
                let code = errno
                close(fd)
                throw TrafficError("connect to \(target)", code)
            }
            var bound = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            let port: UInt16 = withUnsafeBytes(of: &bound) { raw in
                UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            }
            sockets.append((fd, port))
        }
        let payload = [UInt8](repeating: 0x5a, count: size)
        var perFlow = [Int](repeating: 0, count: flows)
        var sent = 0, errors = 0
        var seq: UInt64 = 0
        let cpuStart = processCPUSeconds()
        let start = ContinuousClock.now
        let end = start + .nanoseconds(Int64(duration * 1e9))
        var flow = 0
        outer: while true {
            let now = ContinuousClock.now
            if now >= end { break }
            if let count, sent >= count { break }
            var want = batch
            if let count { want = min(want, count - sent) }
            if let rate, rate > 0 {
                // Ahead of schedule: wait until the next batch is due.
                let due = start + .nanoseconds(Int64(Double(sent) / rate * 1e9))
                if due > now {
                    let gap = due - now
                    let micros = gap.components.seconds * 1_000_000 + gap.components.attoseconds / 1_000_000_000_000
                    usleep(useconds_t(max(1, min(micros, 100_000))))
                    continue outer
                }
                want = min(want, max(1, Int(rate / 1000)))
            }
            let result = payload.withUnsafeBufferPointer {
                flowctl_send_batch(sockets[flow].fd, $0.baseAddress, size, UInt32(want), seq)
            }
            if result > 0 {
                sent += Int(result)
                perFlow[flow] += Int(result)
                seq &+= UInt64(result)
            } else {
                errors += 1
                if -result == ENOBUFS || -result == EAGAIN { usleep(50) }
            }
            flow = (flow + 1) % flows
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var byPort: [String: Int] = [:]
        for (index, socket) in sockets.enumerated() { byPort[String(socket.port)] = perFlow[index] }
        return UDPSendResult(packets: sent, bytes: sent * size, duration: seconds,
                             packetsPerSecond: seconds > 0 ? Double(sent) / seconds : 0, errors: errors,
                             flows: byPort, cpuSeconds: processCPUSeconds() - cpuStart)
    }
}

/// A counting UDP sink: one socket on the port (IPv6 socket accepting
/// IPv4 too), recvmmsg in batches; stops after `duration`, after
/// `idleTimeout` without packets once some arrived, or when `stop()` says.
public final class UDPSink: Sendable {
    public let port: UInt16
    public let duration: Double
    public let idleTimeout: Double
    private let fd: Int32
    private let stopped = Atomic<Bool>(false)

    public init(port: UInt16, duration: Double, idleTimeout: Double = 2, bind host: String? = nil) throws {
        self.port = port
        self.duration = duration
        self.idleTimeout = idleTimeout
        let v6 = host.map { $0.contains(":") } ?? true
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TrafficError("socket") }
        var off: Int32 = 0, size: Int32 = 16 << 20
        if v6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, 4) }
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, 4) != 0 { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, 4) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let endpoint = Endpoint(v6 ? "[\(host ?? "::")]:\(port)" : "\(host ?? "0.0.0.0"):\(port)")!
        let bound = endpoint.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw TrafficError("bind port \(port)", code)
        }
    }

    deinit {
        close(fd)
    }

    /// Asks `run` to return (from any thread).
    public func stop() { stopped.store(true, ordering: .relaxed) }

    public func run() -> UDPSinkResult {
        let slot = 2048, batch = 256
        var buffer = [UInt8](repeating: 0, count: slot * batch)
        var lengths = [UInt32](repeating: 0, count: batch)
        var ports = [UInt16](repeating: 0, count: batch)
        var packets = 0, bytes = 0
        var perFlow: [UInt16: Int] = [:]
        var first: ContinuousClock.Instant?, last: ContinuousClock.Instant?
        let cpuStart = processCPUSeconds()
        let end = ContinuousClock.now + .nanoseconds(Int64(duration * 1e9))
        while !stopped.load(ordering: .relaxed) {
            let now = ContinuousClock.now
            if now >= end { break }
            if let last, now - last > .nanoseconds(Int64(idleTimeout * 1e9)) { break }
            let received = buffer.withUnsafeMutableBufferPointer { b in
                lengths.withUnsafeMutableBufferPointer { l in
                    ports.withUnsafeMutableBufferPointer { p in
                        flowctl_recv_batch(fd, b.baseAddress, slot, UInt32(batch), l.baseAddress, p.baseAddress)
                    }
                }
            }
            guard received > 0 else { continue }
            let at = ContinuousClock.now
            if first == nil { first = at }
            last = at
            packets += Int(received)
            for index in 0..<Int(received) {
                bytes += Int(lengths[index])
                perFlow[ports[index], default: 0] += 1
            }
        }
        let active = first.flatMap { f in last.map { $0 - f } } ?? .zero
        let seconds = Double(active.components.seconds) + Double(active.components.attoseconds) / 1e18
        return UDPSinkResult(packets: packets, bytes: bytes, activeSeconds: seconds,
                             packetsPerSecond: seconds > 0 ? Double(packets) / seconds : 0,
                             flows: Dictionary(uniqueKeysWithValues: perFlow.map { (String($0.key), $0.value) }),
                             cpuSeconds: processCPUSeconds() - cpuStart)
    }
}

/// Checks a sender's result against its sink's: nothing received that was
/// not sent, per flow; the loss is what is left.
public struct Consistency: Codable, Sendable, Hashable {
    public var sent: Int
    public var received: Int
    public var lost: Int
    public var lossFraction: Double

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case receivedMoreThanSent(flow: String, sent: Int, received: Int)
        case unknownFlow(String)
        public var description: String {
            switch self {
            case .receivedMoreThanSent(let flow, let sent, let received):
                "flow from port \(flow): received \(received) but sent only \(sent)"
            case .unknownFlow(let flow): "packets from port \(flow), which the sender never used"
            }
        }
    }

    public static func check(sent: UDPSendResult, received: UDPSinkResult) throws(Failure) -> Consistency {
        for (flow, count) in received.flows {
            guard let sentCount = sent.flows[flow] else { throw .unknownFlow(flow) }
            if count > sentCount { throw .receivedMoreThanSent(flow: flow, sent: sentCount, received: count) }
        }
        let lost = sent.packets - received.packets
        return Consistency(sent: sent.packets, received: received.packets, lost: lost,
                           lossFraction: sent.packets > 0 ? Double(lost) / Double(sent.packets) : 0)
    }
}
