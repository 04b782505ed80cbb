@testable import FlowctlTraffic
import Foundation
import XCTest

/// TCP generators on loopback (no root): both sides count the same.
final class TCPTrafficTests: XCTestCase {
    /// Runs `server` on a thread, `client` here, then stops the server.
    func pair<S, C>(_ server: @escaping @Sendable () -> S, stop: () -> Void, client: () throws -> C) throws -> (S, C) {
        nonisolated(unsafe) var serverResult: S?
        let done = DispatchSemaphore(value: 0)
        Thread { serverResult = server(); done.signal() }.start()
        let clientResult = try client()
        stop()
        done.wait()
        return (try XCTUnwrap(serverResult), clientResult)
    }

    func testBulkBytesAgree() throws {
        let sink = try TCPSink(port: 19_501, idleTimeout: 5)
        let (received, sent) = try pair({ sink.run() }, stop: {
            usleep(200_000)
            sink.stop()
        }) {
            try TCPBulkSender(target: Endpoint("127.0.0.1:19501")!, streams: 3, duration: 0.3).run()
        }
        XCTAssertEqual(sent.failedStreams, 0)
        XCTAssertGreaterThan(sent.bytes, 0)
        XCTAssertEqual(received.bytes, sent.bytes, "every byte written was read")
        XCTAssertEqual(received.connections, 3)
    }

    func testConnectRequestResponseCloseCountsAgree() throws {
        let server = try RequestResponseServer(port: 19_502, persistent: false, idleTimeout: 5)
        let (answered, client) = try pair({ server.run() }, stop: {
            usleep(200_000)
            server.stop()
        }) {
            try RequestResponseClient(target: Endpoint("[::1]:19502")!, workers: 2, duration: 30, persistent: false,
                                      count: 200).run()
        }
        XCTAssertEqual(client.transactions, 400)
        XCTAssertEqual(client.failures, 0)
        XCTAssertEqual(answered.transactions, 400)
        XCTAssertEqual(answered.connections, 400, "one connection per transaction")
        XCTAssertEqual(client.latency.count, 400)
    }

    func testRequestResponseLatencyHistogramCountsEveryTransaction() throws {
        let server = try RequestResponseServer(port: 19_503, persistent: true, idleTimeout: 5)
        let (answered, client) = try pair({ server.run() }, stop: {
            usleep(200_000)
            server.stop()
        }) {
            try RequestResponseClient(target: Endpoint("127.0.0.1:19503")!, workers: 2, duration: 30, persistent: true,
                                      count: 1000).run()
        }
        XCTAssertEqual(client.transactions, 2000)
        XCTAssertEqual(answered.transactions, 2000)
        XCTAssertEqual(answered.connections, 2)
        XCTAssertEqual(client.latency.count, 2000)
        XCTAssertLessThanOrEqual(client.latency.p50Microseconds, client.latency.p99Microseconds)
        XCTAssertLessThanOrEqual(client.latency.p99Microseconds, client.latency.maxMicroseconds)
    }

    func testUnreachableServerCountsFailures() throws {
        // Nothing listens on this port: every attempt fails, none succeeds.
        let result = try RequestResponseClient(target: Endpoint("127.0.0.1:19509")!, workers: 1, duration: 0.2,
                                               persistent: false).run()
        XCTAssertEqual(result.transactions, 0)
        XCTAssertGreaterThan(result.failures, 0)
    }
}
