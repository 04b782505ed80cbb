@testable import FlowctlDaemon
import FlowctlProcess
import Foundation
import Glibc
import Logging
import Synchronization
import XCTest

/// The server behind the control socket and the metrics endpoint: no
/// client can hold up another. Checked by order of events (an answer
/// arrives while the idle client is still connected), not by timing.
final class ConnectionServerTests: XCTestCase {
    var path: String!
    var server: ConnectionServer!

    override func setUp() {
        path = NSTemporaryDirectory() + "flowctl-cs-\(UUID().uuidString.prefix(8)).sock"
    }

    override func tearDown() {
        server?.stop()
        server = nil
        unlink(path)
    }

    /// An echo server over newline-framed requests; `delayed` answers from
    /// another thread later, as the event loop does.
    func start(limits: ConnectionServer.Limits = .init(), delayed: Bool = false) throws {
        let listener = try UnixSocket.listen(.path(path))
        server = ConnectionServer(name: "test", listeners: [listener], limits: limits, handlers: .init(
            frame: { received, ended in
                if let newline = received.firstIndex(of: UInt8(ascii: "\n")) { return .complete(received[..<newline]) }
                return ended && !received.isEmpty ? .complete(received) : .incomplete
            },
            handle: { request, peer, reply in
                let answer = Data("echo \(String(decoding: request, as: UTF8.self)) from pid \(peer?.pid ?? -1)\n".utf8)
                if delayed {
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(50)) { reply.send(answer) }
                } else {
                    reply.send(answer)
                }
            },
            refusal: { Data("refused: \($0)\n".utf8) }), logger: Logger(label: "test"))
        server.start()
    }

    func connect() throws -> Int32 {
        let fd = try UnixSocket.connect(.path(path))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func send(_ fd: Int32, _ text: String) {
        XCTAssertTrue(writeAll(fd, Data(text.utf8)))
    }

    func answer(_ fd: Int32) -> String {
        String(decoding: readAll(fd, limit: 1 << 20), as: UTF8.self)
    }

    func request(_ text: String) throws -> String {
        let fd = try connect()
        defer { close(fd) }
        send(fd, text + "\n")
        return answer(fd)
    }

    func testAnswersWithThePeersCredentials() throws {
        try start()
        XCTAssertEqual(try request("hello"), "echo hello from pid \(getpid())\n")
    }

    func testIdleAndTricklingClientsHoldUpNoOne() throws {
        var limits = ConnectionServer.Limits()
        limits.requestDeadline = .milliseconds(300)
        try start(limits: limits)
        let idle = try connect()
        defer { close(idle) }
        let trickling = try connect()
        defer { close(trickling) }
        send(trickling, "{\"ver")
        // Served while both are connected and have not sent a whole request.
        for index in 0..<20 {
            XCTAssertEqual(try request("r\(index)"), "echo r\(index) from pid \(getpid())\n")
        }
        // Another byte; the server may already have cut it off (then EPIPE).
        _ = writeAll(trickling, Data("sion\":".utf8))
        // Past its deadline each is told why and dropped (EOF after the refusal).
        XCTAssertEqual(answer(idle), "refused: no whole request within 0.3 seconds\n")
        XCTAssertEqual(answer(trickling), "refused: no whole request within 0.3 seconds\n")
        XCTAssertEqual(try request("after"), "echo after from pid \(getpid())\n")
    }

    func testConnectionCapRefusesTheOneTooMany() throws {
        var limits = ConnectionServer.Limits()
        limits.maxConnections = 2
        try start(limits: limits)
        let first = try connect(), second = try connect()
        defer { close(first); close(second) }
        // Accepted in order: the third finds two open.
        XCTAssertEqual(try request("third"), "refused: too many clients (2); try again\n")
        close(first)
        close(second)
        // Closed ones free their slots (the server sees EOF on its next round).
        var served = false
        for _ in 0..<500 where !served {
            served = (try request("again")) == "echo again from pid \(getpid())\n"
            if !served { usleep(10_000) }
        }
        XCTAssertTrue(served, "a slot was never freed")
    }

    func testOversizedRequestIsRefused() throws {
        var limits = ConnectionServer.Limits()
        limits.maxRequestBytes = 1024
        try start(limits: limits)
        let fd = try connect()
        defer { close(fd) }
        send(fd, String(repeating: "x", count: 4096))
        XCTAssertEqual(answer(fd), "refused: request larger than 1024 bytes\n")
    }

    /// A client gone before its answer is ready costs the server nothing:
    /// the late answer meets EPIPE (no SIGPIPE: the test process would die).
    func testClientThatVanishesBeforeItsAnswer() throws {
        try start(delayed: true)
        for _ in 0..<10 {
            let fd = try connect()
            send(fd, "bye\n")
            close(fd)
        }
        XCTAssertEqual(try request("still here"), "echo still here from pid \(getpid())\n")
    }

    /// Many at once, all answered (each connection waits for its delayed answer).
    func testConcurrentClients() throws {
        try start(delayed: true)
        let descriptors = try (0..<100).map { index -> Int32 in
            let fd = try connect()
            send(fd, "c\(index)\n")
            return fd
        }
        for (index, fd) in descriptors.enumerated() {
            XCTAssertEqual(answer(fd), "echo c\(index) from pid \(getpid())\n")
            close(fd)
        }
    }
}

extension ConnectionServerTests {
    /// A client that sends a whole request and hangs up at once gets its
    /// request handled once, not once per wake-up.
    func testRequestOfAClientThatHangsUpIsHandledOnce() throws {
        let listener = try UnixSocket.listen(.path(path))
        let handled = Counter()
        server = ConnectionServer(name: "test", listeners: [listener], handlers: .init(
            frame: { received, ended in ended || received.last == UInt8(ascii: "\n") ? .complete(received) : .incomplete },
            handle: { request, _, reply in
                handled.add(String(decoding: request, as: UTF8.self))
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) { reply.send(Data("late\n".utf8)) }
            },
            refusal: { Data($0.utf8) }), logger: Logger(label: "test"))
        server.start()
        for index in 0..<5 {
            let fd = try connect()
            send(fd, "hangup \(index)\n")
            close(fd)
        }
        XCTAssertEqual(try request("last"), "late\n")
        usleep(200_000)   // past the late answers of the hung-up clients
        XCTAssertEqual(handled.values.sorted(), ["hangup 0\n", "hangup 1\n", "hangup 2\n", "hangup 3\n", "hangup 4\n", "last\n"])
    }
}

final class Counter: Sendable {
    private let lock = Locked<[String]>([])
    func add(_ value: String) { lock.withLock { $0.append(value) } }
    var values: [String] { lock.withLock { $0 } }
}
