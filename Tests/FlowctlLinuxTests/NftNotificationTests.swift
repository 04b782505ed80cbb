@testable import FlowctlLinux
import FlowctlCore
import XCTest

/// Decoding of nftables notifications, from hand-built messages.
final class NftNotificationTests: XCTestCase {
    func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

    func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        var bytes = u16(UInt16(4 + value.count)) + u16(type) + value
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    func message(_ nftType: UInt16, family: UInt8, _ attributes: [UInt8]) -> [UInt8] {
        let body = [family, 0, 0, 0] + attributes
        return u32(UInt32(16 + body.count)) + u16(10 << 8 | nftType) + u16(0) + u32(0) + u32(0) + body
    }

    func testTransactionCollectsTablesUntilNewgen() {
        var touched = Set<TableRef>()
        // NFT_MSG_DELTABLE (2) of inet flowctl, NFT_MSG_NEWCHAIN (3) of ip filter.
        XCTAssertNil(NftNotification.decode(message(2, family: 1, attribute(1, Array("flowctl".utf8) + [0])), touched: &touched))
        XCTAssertNil(NftNotification.decode(message(3, family: 2, attribute(1, Array("filter".utf8) + [0])), touched: &touched))
        let newgen = message(15, family: 0, attribute(1, [0, 0, 1, 2]) + attribute(2, [0, 0, 0x30, 0x39])
                             + attribute(3, Array("nft".utf8) + [0]))
        let event = NftNotification.decode(newgen, touched: &touched)
        XCTAssertEqual(event, .commit(RulesetCommit(generation: 258, pid: 12345, tables: [
            TableRef(family: .inet, name: "flowctl"), TableRef(family: .ip, name: "filter"),
        ])))
        XCTAssertTrue(touched.isEmpty, "the next transaction starts empty")
    }

    func testOtherSubsystemsAndTruncatedMessagesAreIgnored() {
        var touched = Set<TableRef>()
        var foreign = message(2, family: 1, attribute(1, Array("x".utf8) + [0]))
        foreign[5] = 1  // subsystem 1 (ctnetlink)
        XCTAssertNil(NftNotification.decode(foreign, touched: &touched))
        XCTAssertNil(NftNotification.decode([1, 2, 3], touched: &touched))
        XCTAssertTrue(touched.isEmpty)
        // An attribute whose length runs past the end is not read.
        XCTAssertTrue(NftNotification.attributes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 40, 0, 1, 0]).isEmpty)
    }
}
