@testable import FlowctlDaemon
import FlowctlCore
import Foundation
import Glibc
import Logging
import Synchronization
import XCTest

/// The control socket: requests reach the loop's dispatch and the answers
/// the client; malformed, foreign-version and unauthorised requests are
/// answered without reaching the loop; a second daemon is refused.
final class ControlServerTests: XCTestCase {
    var path: String!
    var control: ControlServer?
    var server: ConnectionServer?
    final class Count: Sendable {
        let value = Atomic<Int>(0)
    }
    let dispatched = Count()

    override func setUp() {
        path = NSTemporaryDirectory() + "flowctl-control-\(UUID().uuidString.prefix(8)).sock"
    }

    override func tearDown() {
        server?.stop()
        control?.unpublish()
        server = nil
        control = nil
    }

    /// A control server whose loop answers "got COMMAND".
    func start() throws {
        let control = try ControlServer(path: path, group: nil, logger: Logger(label: "test"))
        self.control = control
        server = try control.start { [dispatched] request, reply in
            dispatched.value.add(1, ordering: .relaxed)
            reply.send(ControlResponse(ok: true, error: "got \(request.command.rawValue)"))
        }
    }

    /// One raw line to the socket and the raw answer.
    func exchange(_ line: String) throws -> ControlResponse {
        let fd = try UnixSocket.connect(.path(path))
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        XCTAssertTrue(writeAll(fd, Data((line + "\n").utf8)))
        return try JSONDecoder().decode(ControlResponse.self, from: readAll(fd, limit: 1 << 20))
    }

    func testRequestsReachTheLoopAndAnswersTheClientAtThePathAndInTheNamespace() throws {
        try start()
        let byPath = try XCTUnwrap(try ControlClient.send(ControlRequest(command: .status), to: .path(path), timeoutSeconds: 10))
        XCTAssertTrue(byPath.ok)
        XCTAssertEqual(byPath.error, "got status")
        let byNamespace = try XCTUnwrap(try ControlClient.send(ControlRequest(command: .resync), to: .daemon, timeoutSeconds: 10))
        XCTAssertEqual(byNamespace.error, "got resync")
        XCTAssertEqual(dispatched.value.load(ordering: .relaxed), 2)
        var status = stat()
        XCTAssertEqual(stat(path, &status), 0)
        XCTAssertEqual(status.st_mode & 0o777, 0o660, "root, the daemon's user and its group only")
    }

    func testMalformedAndForeignRequestsNeverReachTheLoop() throws {
        try start()
        let malformed = try exchange("status please")
        XCTAssertFalse(malformed.ok)
        XCTAssertEqual(malformed.error, "malformed control request (expected one JSON object per line)")
        let foreign = try exchange(#"{"version":99,"command":"status"}"#)
        XCTAssertFalse(foreign.ok)
        XCTAssertEqual(foreign.error, "unsupported control protocol version 99 (daemon speaks \(ControlProtocol.version))")
        XCTAssertEqual(dispatched.value.load(ordering: .relaxed), 0)
    }

    func testASecondDaemonIsRefusedAndTheFirstKeepsServing() throws {
        try start()
        XCTAssertThrowsError(try ControlServer(path: path, group: nil, logger: Logger(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("another flowctl daemon is listening on \(path!)"), "\(error)")
        }
        let other = NSTemporaryDirectory() + "flowctl-control-other-\(getpid()).sock"
        XCTAssertThrowsError(try ControlServer(path: other, group: nil, logger: Logger(label: "test"))) { error in
            XCTAssertTrue("\(error)".contains("another flowctl daemon runs in this network namespace"), "\(error)")
        }
        XCTAssertEqual(try ControlClient.send(ControlRequest(command: .status), to: .path(path), timeoutSeconds: 10)?.ok, true)
    }

    func testAnUnknownGroupIsRefused() {
        XCTAssertThrowsError(try ControlServer(path: path, group: "no-such-group-\(getpid())", logger: Logger(label: "test")))
    }

    func testWhoMayControlTheDaemon() {
        func peer(uid: UInt32, gid: UInt32, groups: [gid_t] = []) -> ConnectionServer.Peer {
            ConnectionServer.Peer(pid: 1, uid: uid, gid: gid, groups: groups)
        }
        XCTAssertTrue(ControlServer.authorized(peer(uid: 0, gid: 0), allowedGroup: nil), "root")
        XCTAssertTrue(ControlServer.authorized(peer(uid: geteuid(), gid: 5), allowedGroup: nil), "the daemon's own user")
        let stranger = geteuid() == 4242 ? 4243 : 4242
        XCTAssertFalse(ControlServer.authorized(peer(uid: UInt32(stranger), gid: 100), allowedGroup: nil))
        XCTAssertTrue(ControlServer.authorized(peer(uid: UInt32(stranger), gid: 990), allowedGroup: 990), "primary group")
        XCTAssertTrue(ControlServer.authorized(peer(uid: UInt32(stranger), gid: 100, groups: [20, 990]), allowedGroup: 990),
                      "supplementary group")
        XCTAssertFalse(ControlServer.authorized(peer(uid: UInt32(stranger), gid: 100, groups: [20]), allowedGroup: 990))
    }
}

/// The metrics endpoint: GET /metrics is the registry's text, anything
/// else a 404; a bad address is refused at start.
final class MetricsServerTests: XCTestCase {
    func get(_ port: UInt16, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0, String(cString: strerror(errno)))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        XCTAssertTrue(writeAll(fd, Data(request.utf8)))
        return String(decoding: readAll(fd, limit: 1 << 20), as: UTF8.self)
    }

    /// A server on a free loopback port (tried until one binds).
    func start(_ metrics: DaemonMetrics) throws -> (MetricsServer, UInt16) {
        for attempt in 0..<50 {
            let port = UInt16(20000 + (Int(getpid()) * 7 + attempt * 131) % 40000)
            if let server = try? MetricsServer(address: "127.0.0.1:\(port)", registry: metrics.registry, logger: Logger(label: "test")) {
                server.start()
                return (server, port)
            }
        }
        struct NoFreePort: Error {}
        throw NoFreePort()
    }

    func testServesTheRegistryOnGetMetricsOnly() throws {
        let metrics = DaemonMetrics(version: "9.9.9")
        let (server, port) = try start(metrics)
        defer { server.stop() }
        let answer = try get(port, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        XCTAssertTrue(answer.hasPrefix("HTTP/1.0 200 OK\r\n"), answer)
        XCTAssertTrue(answer.contains("Content-Type: text/plain; version=0.0.4"), answer)
        XCTAssertTrue(answer.contains(#"flowctl_build_info{version="9.9.9"} 1"#), answer)
        let body = try XCTUnwrap(answer.components(separatedBy: "\r\n\r\n").last)
        let length = try XCTUnwrap(answer.split(separator: "\r\n").first { $0.hasPrefix("Content-Length: ") })
        XCTAssertEqual(Int(length.dropFirst("Content-Length: ".count)), body.utf8.count)
        XCTAssertTrue(try get(port, "GET / HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 404 Not Found\r\n"))
        XCTAssertTrue(try get(port, "POST /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 404 Not Found\r\n"))
    }

    func testABadAddressIsRefused() {
        for address in ["nonsense", "127.0.0.1", "127.0.0.1:http", "300.1.1.1:9464"] {
            XCTAssertThrowsError(try MetricsServer(address: address, registry: DaemonMetrics().registry,
                                                   logger: Logger(label: "test")), address) { error in
                XCTAssertTrue("\(error)".contains("invalid metrics address"), "\(address): \(error)")
            }
        }
    }
}
