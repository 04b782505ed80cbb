import FlowctlProcess
import Foundation
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// TCP generators: bulk streams, connect/request/response/close (flow
/// setup cost) and request/response latency on persistent connections.
/// Servers use a thread per connection; clients a thread per stream or
/// worker. Every result is a Codable value printed as one JSON line.

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A listening TCP socket (IPv6, IPv4-mapped too) with a stop flag the
/// accept loop polls.
final class Listener: Sendable {
    let fd: Int32
    let stopFlag = Locked(false)

    init(port: UInt16) throws {
        fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TrafficError("socket") }
        var on: Int32 = 1, off: Int32 = 0
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, 4)
        setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, 4)
        let bound = Endpoint("[::]:\(port)")!.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 512) == 0 else {
            let code = errno
            close(fd)
            throw TrafficError("listen on port \(port)", code)
        }
    }

    deinit { close(fd) }

    func stop() { stopFlag.withLock { $0 = true } }

    /// Accepts until stopped (or `idle` seconds without any connection
    /// once one came), calling `serve` on a new thread for each connection.
    func acceptLoop(idle: Double, serve: @escaping @Sendable (Int32) -> Void) {
        let lastActivity = Locked(ContinuousClock.Instant?.none)
        let active = Locked(0)
        while !stopFlag.withLock({ $0 }) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 100) <= 0 {
                if let last = lastActivity.withLock({ $0 }), active.withLock({ $0 }) == 0,
                   ContinuousClock.now - last > .nanoseconds(Int64(idle * 1e9)) { break }
                continue
            }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            lastActivity.withLock { $0 = .now }
            active.withLock { $0 += 1 }
            Thread {
                serve(client)
                close(client)
                active.withLock { $0 -= 1 }
                lastActivity.withLock { $0 = .now }
            }.start()
        }
        // Let connections in flight finish their accounting.
        let deadline = ContinuousClock.now + .seconds(2)
        while active.withLock({ $0 }) > 0 && ContinuousClock.now < deadline { usleep(10_000) }
    }
}

func connectTCP(_ target: Endpoint) -> Int32? {
    let fd = socket(target.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var on: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, 4)
    guard target.withSockaddr({ connect(fd, $0, $1) }) == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// Reads exactly `count` bytes; false on EOF or error.
func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = read(fd, buffer + done, count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

func writeFully(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Bool {
    var done = 0
    while done < count {
        let n = write(fd, buffer + done, count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

// MARK: - Bulk

public struct TCPSinkResult: Codable, Sendable, Hashable {
    public var bytes: Int
    public var connections: Int
    public var activeSeconds: Double
    public var gigabitsPerSecond: Double
    public var cpuSeconds: Double
}

public struct TCPSendResult: Codable, Sendable, Hashable {
    public var bytes: Int
    public var streams: Int
    public var failedStreams: Int
    public var duration: Double
    public var gigabitsPerSecond: Double
    public var cpuSeconds: Double
}

/// Counts bytes of every stream until stopped or idle.
public final class TCPSink: Sendable {
    let listener: Listener
    let idle: Double
    public init(port: UInt16, idleTimeout: Double = 2) throws {
        listener = try Listener(port: port)
        idle = idleTimeout
    }
    public func stop() { listener.stop() }

    public func run() -> TCPSinkResult {
        let totals = Locked((bytes: 0, connections: 0, first: ContinuousClock.Instant?.none, last: ContinuousClock.Instant?.none))
        let cpu = processCPUSeconds()
        listener.acceptLoop(idle: idle) { fd in
            totals.withLock { $0.connections += 1 }
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                let now = ContinuousClock.now
                totals.withLock {
                    $0.bytes += n
                    if $0.first == nil { $0.first = now }
                    $0.last = now
                }
            }
        }
        return totals.withLock { t in
            let active = t.first.flatMap { f in t.last.map { seconds($0 - f) } } ?? 0
            return TCPSinkResult(bytes: t.bytes, connections: t.connections, activeSeconds: active,
                                 gigabitsPerSecond: active > 0 ? Double(t.bytes) * 8 / active / 1e9 : 0,
                                 cpuSeconds: processCPUSeconds() - cpu)
        }
    }
}

public struct TCPBulkSender: Sendable {
    public var target: Endpoint
    public var streams: Int
    public var duration: Double
    public init(target: Endpoint, streams: Int, duration: Double) {
        self.target = target
        self.streams = streams
        self.duration = duration
    }

    public func run() throws -> TCPSendResult {
        guard (1...1024).contains(streams) else { throw TrafficError(message: "streams must be 1 to 1024") }
        let totals = Locked((bytes: 0, failed: 0))
        let cpu = processCPUSeconds()
        let start = ContinuousClock.now
        let end = start + .nanoseconds(Int64(duration * 1e9))
        let group = DispatchGroup()
        let target = self.target
        for _ in 0..<streams {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let fd = connectTCP(target) else { totals.withLock { $0.failed += 1 }; return }
                defer { close(fd) }
                let buffer = [UInt8](repeating: 0x5a, count: 1 << 16)
                var sent = 0
                while ContinuousClock.now < end {
                    let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    sent += n
                }
                totals.withLock { $0.bytes += sent }
            }.start()
        }
        group.wait()
        let elapsed = seconds(ContinuousClock.now - start)
        return totals.withLock {
            TCPSendResult(bytes: $0.bytes, streams: streams, failedStreams: $0.failed, duration: elapsed,
                          gigabitsPerSecond: elapsed > 0 ? Double($0.bytes) * 8 / elapsed / 1e9 : 0,
                          cpuSeconds: processCPUSeconds() - cpu)
        }
    }
}

// MARK: - Request/response

public struct LatencyPercentiles: Codable, Sendable, Hashable {
    public var count: UInt64
    public var p50Microseconds: Double
    public var p90Microseconds: Double
    public var p99Microseconds: Double
    public var p999Microseconds: Double
    public var maxMicroseconds: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        p50Microseconds = Double(histogram.valueAtPercentile(50)) / 1000
        p90Microseconds = Double(histogram.valueAtPercentile(90)) / 1000
        p99Microseconds = Double(histogram.valueAtPercentile(99)) / 1000
        p999Microseconds = Double(histogram.valueAtPercentile(99.9)) / 1000
        maxMicroseconds = Double(histogram.max) / 1000
    }
}

public struct TransactionResult: Codable, Sendable, Hashable {
    public var transactions: Int
    public var failures: Int
    public var duration: Double
    public var transactionsPerSecond: Double
    public var latency: LatencyPercentiles
    public var p50Microseconds: Double
    public var p99Microseconds: Double
    public var cpuSeconds: Double
}

public struct ServerResult: Codable, Sendable, Hashable {
    public var transactions: Int
    public var connections: Int
    public var cpuSeconds: Double
}

/// Answers `size`-byte requests with `size`-byte responses: once per
/// connection (`persistent` false: connect/request/response/close) or in a
/// loop on persistent connections.
public final class RequestResponseServer: Sendable {
    let listener: Listener
    let size: Int
    let persistent: Bool
    let idle: Double
    public init(port: UInt16, size: Int = 64, persistent: Bool, idleTimeout: Double = 2) throws {
        listener = try Listener(port: port)
        self.size = size
        self.persistent = persistent
        idle = idleTimeout
    }
    public func stop() { listener.stop() }

    public func run() -> ServerResult {
        let totals = Locked((transactions: 0, connections: 0))
        let cpu = processCPUSeconds()
        let size = self.size, persistent = self.persistent
        listener.acceptLoop(idle: idle) { fd in
            totals.withLock { $0.connections += 1 }
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, 4)
            var buffer = [UInt8](repeating: 0, count: size)
            repeat {
                let ok = buffer.withUnsafeMutableBytes { readFully(fd, $0.baseAddress!, size) && writeFully(fd, $0.baseAddress!, size) }
                if !ok { break }
                totals.withLock { $0.transactions += 1 }
            } while persistent
        }
        return totals.withLock { ServerResult(transactions: $0.transactions, connections: $0.connections, cpuSeconds: processCPUSeconds() - cpu) }
    }
}

/// Clients: `workers` threads, each timing request -> response into a
/// shared HdrHistogram (nanoseconds), for `duration` or `count` transactions each.
public struct RequestResponseClient: Sendable {
    public var target: Endpoint
    public var workers: Int
    public var duration: Double
    public var size: Int
    /// false: a new connection per transaction (CRR); true: one per worker (RR).
    public var persistent: Bool
    public var count: Int?

    public init(target: Endpoint, workers: Int, duration: Double, size: Int = 64, persistent: Bool, count: Int? = nil) {
        self.target = target
        self.workers = workers
        self.duration = duration
        self.size = size
        self.persistent = persistent
        self.count = count
    }

    public func run() throws -> TransactionResult {
        guard (1...1024).contains(workers) else { throw TrafficError(message: "workers must be 1 to 1024") }
        let histogram = Locked(Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three))
        let totals = Locked((transactions: 0, failures: 0))
        let cpu = processCPUSeconds()
        let start = ContinuousClock.now
        let end = start + .nanoseconds(Int64(duration * 1e9))
        let group = DispatchGroup()
        let client = self
        for _ in 0..<workers {
            group.enter()
            Thread {
                defer { group.leave() }
                var local = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                var done = 0, failed = 0
                var buffer = [UInt8](repeating: 0x61, count: client.size)
                var connection: Int32? = nil
                defer { if let connection { close(connection) } }
                while ContinuousClock.now < end, client.count.map({ done < $0 }) ?? true {
                    let began = ContinuousClock.now
                    if connection == nil { connection = connectTCP(client.target) }
                    guard let fd = connection else { failed += 1; usleep(1000); continue }
                    let ok = buffer.withUnsafeMutableBytes {
                        writeFully(fd, $0.baseAddress!, client.size) && readFully(fd, $0.baseAddress!, client.size)
                    }
                    if !client.persistent || !ok {
                        close(fd)
                        connection = nil
                    }
                    if ok {
                        done += 1
                        _ = local.record(UInt64(max(0, (ContinuousClock.now - began).nanosecondsValue)))
                    } else {
                        failed += 1
                    }
                }
                let finished = local
                histogram.withLock { $0.add(finished) }
                totals.withLock { $0.transactions += done; $0.failures += failed }
            }.start()
        }
        group.wait()
        let elapsed = seconds(ContinuousClock.now - start)
        let latency = histogram.withLock { LatencyPercentiles($0) }
        return totals.withLock {
            TransactionResult(transactions: $0.transactions, failures: $0.failures, duration: elapsed,
                              transactionsPerSecond: elapsed > 0 ? Double($0.transactions) / elapsed : 0,
                              latency: latency, p50Microseconds: latency.p50Microseconds,
                              p99Microseconds: latency.p99Microseconds, cpuSeconds: processCPUSeconds() - cpu)
        }
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
