@testable import FlowctlTraffic
import Foundation
import XCTest

/// The UDP generator's accounting on loopback (no root). Nothing here
/// measures speed: the checks are on counts.
final class UDPTrafficTests: XCTestCase {
    func testEndpointParsing() {
        XCTAssertEqual(Endpoint("198.18.1.2:9000")?.port, 9000)
        XCTAssertEqual(Endpoint("[2001:2::1]:53")?.host, "2001:2::1")
        XCTAssertEqual(Endpoint("[2001:2::1]:53")?.isIPv6, true)
        XCTAssertNil(Endpoint("198.18.1.2"))
        XCTAssertNil(Endpoint("2001:2::1:53"), "IPv6 needs brackets")
        XCTAssertNil(Endpoint("host.example:80"), "addresses only")
        XCTAssertNil(Endpoint("198.18.1.2:0"))
        XCTAssertNil(Endpoint("198.18.1.2:70000"))
    }

    func sendAndReceive(to address: String, port: UInt16, flows: Int, count: Int) throws
        -> (UDPSendResult, UDPSinkResult)
    {
        let sink = try UDPSink(port: port, duration: 30, idleTimeout: 1)
        nonisolated(unsafe) var received: UDPSinkResult?
        let done = DispatchSemaphore(value: 0)
        Thread { received = sink.run(); done.signal() }.start()
        // A modest rate keeps loopback lossless on a busy machine.
        let sent = try UDPSender(target: Endpoint("\(address):\(port)")!, size: 18, flows: flows, duration: 30,
                                 count: count, rate: 20_000).run()
        done.wait()
        return (sent, try XCTUnwrap(received))
    }

    func testLosslessAccountingPerFlowIPv4() throws {
        let (sent, received) = try sendAndReceive(to: "127.0.0.1", port: 19_431, flows: 4, count: 8_000)
        XCTAssertEqual(sent.packets, 8_000)
        XCTAssertEqual(sent.flows.count, 4)
        XCTAssertEqual(sent.flows.values.reduce(0, +), 8_000)
        XCTAssertEqual(received.packets, sent.packets)
        XCTAssertEqual(received.flows, sent.flows, "every flow arrives whole")
        XCTAssertEqual(received.bytes, 8_000 * 18)
        let check = try Consistency.check(sent: sent, received: received)
        XCTAssertEqual(check.lost, 0)
    }

    func testIPv6Loopback() throws {
        let (sent, received) = try sendAndReceive(to: "[::1]", port: 19_432, flows: 2, count: 2_000)
        XCTAssertEqual(received.packets, sent.packets)
        XCTAssertEqual(Set(received.flows.keys), Set(sent.flows.keys))
    }

    func testConsistencyRefusesMoreThanSentAndUnknownFlows() {
        let sent = UDPSendResult(packets: 10, bytes: 180, duration: 1, packetsPerSecond: 10, errors: 0,
                                 flows: ["1000": 10], cpuSeconds: 0)
        var received = UDPSinkResult(packets: 11, bytes: 198, activeSeconds: 1, packetsPerSecond: 11,
                                     flows: ["1000": 11], cpuSeconds: 0)
        XCTAssertThrowsError(try Consistency.check(sent: sent, received: received)) { error in
            XCTAssertEqual(error as? Consistency.Failure, .receivedMoreThanSent(flow: "1000", sent: 10, received: 11))
        }
        received.flows = ["2000": 1]
        XCTAssertThrowsError(try Consistency.check(sent: sent, received: received)) { error in
            XCTAssertEqual(error as? Consistency.Failure, .unknownFlow("2000"))
        }
        received = UDPSinkResult(packets: 7, bytes: 126, activeSeconds: 1, packetsPerSecond: 7, flows: ["1000": 7],
                                 cpuSeconds: 0)
        let check = try? Consistency.check(sent: sent, received: received)
        XCTAssertEqual(check?.lost, 3)
        XCTAssertEqual(check?.lossFraction ?? 0, 0.3, accuracy: 1e-9)
    }

    func testBadSizesAreRefused() {
        XCTAssertThrowsError(try UDPSender(target: Endpoint("127.0.0.1:9")!, size: 0, flows: 1, duration: 1).run())
        XCTAssertThrowsError(try UDPSender(target: Endpoint("127.0.0.1:9")!, size: 18, flows: 0, duration: 1).run())
    }
}
