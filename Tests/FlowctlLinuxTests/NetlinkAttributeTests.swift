@testable import FlowctlLinux
import FlowctlCore
import XCTest

/// NetlinkAttributes (the one attribute walker, libmnl underneath) and the
/// decoders built on it, from hand-built messages. Wire numbers are typed
/// here on purpose: they check the constants the sources take from the headers.
final class NetlinkAttributeTests: XCTestCase {
    /// Little-endian (host order on the machines flowctl runs on) and network-order bytes.
    static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func be32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

    /// One attribute, padded to 4 bytes unless `pad` is false.
    static func tlv(_ type: UInt16, _ payload: [UInt8], pad: Bool = true) -> [UInt8] {
        var bytes = le16(UInt16(4 + payload.count)) + le16(type) + payload
        while pad, bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    /// A whole message: nlmsghdr (length, type, flags, seq 1, port 0), then `body`.
    static func message(type: UInt16, flags: UInt16 = 0, _ body: [UInt8]) -> [UInt8] {
        le32(UInt32(16 + body.count)) + le16(type) + le16(flags) + le32(1) + le32(0) + body
    }

    static let nested: UInt16 = 0x8000  // NLA_F_NESTED
    static let cString = Array("flowctl".utf8) + [0]

    func walk(_ bytes: [UInt8]) -> [NetlinkAttribute] { Array(NetlinkAttributes(bytes[...])) }

    // MARK: - The walker

    func testWellFormedAttributesInOrder() {
        let bytes = Self.tlv(1, Self.cString) + Self.tlv(2, Self.be32(258)) + Self.tlv(7, [])
        let attributes = walk(bytes)
        XCTAssertEqual(attributes.map(\.type), [1, 2, 7])
        XCTAssertEqual(attributes[0].string, "flowctl")
        XCTAssertEqual(attributes[1].bigEndianU32, 258)
        XCTAssertEqual(Array(attributes[1].payload), [0, 0, 1, 2], "the payload only, no header or padding")
        XCTAssertTrue(attributes[2].payload.isEmpty, "a length of 4 is an attribute with no payload")
        XCTAssertNil(attributes[2].bigEndianU32)
        XCTAssertNil(attributes[2].u8)
    }

    func testPaddingIsSkippedAndTheLastAttributeNeedsNone() {
        // 5-byte payload padded to 8, then a 1-byte payload with no padding at the very end.
        let bytes = Self.tlv(1, [1, 2, 3, 4, 5]) + Self.tlv(2, [9], pad: false)
        XCTAssertEqual(bytes.count, 12 + 5)
        let attributes = walk(bytes)
        XCTAssertEqual(attributes.map(\.type), [1, 2])
        XCTAssertEqual(Array(attributes[0].payload), [1, 2, 3, 4, 5])
        XCTAssertEqual(attributes[1].u8, 9)
    }

    func testNestedAndRepeatedAttributes() {
        let inner = Self.tlv(1, [1]) + Self.tlv(2, Self.le32(0xdead_beef)) + Self.tlv(1, [2])
        // The nested and byte-order flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER) are masked off.
        let bytes = Self.tlv(3 | Self.nested, inner) + Self.tlv(4 | 0x4000, Self.be32(7))
        let attributes = NetlinkAttributes(bytes[...])
        XCTAssertEqual(attributes.map(\.type), [3, 4])
        XCTAssertEqual(attributes.first(ofType: 4)?.bigEndianU32, 7)
        let children = attributes.first(ofType: 3)!.nested
        XCTAssertEqual(children.map(\.type), [1, 2, 1], "repeated types are all kept, in order")
        XCTAssertEqual(children.first(ofType: 1)?.u8, 1, "first(ofType:) is the first of them")
        XCTAssertEqual(children.first(ofType: 2)?.u32, 0xdead_beef)
        XCTAssertNil(children.first(ofType: 9))
    }

    func testATruncatedLastAttributeEndsTheWalk() {
        let whole = Self.tlv(1, [1, 1, 1, 1]) + Self.tlv(2, [2, 2, 2, 2])
        // The second attribute says 8 bytes; only 6 are there.
        XCTAssertEqual(walk(Array(whole.dropLast(2))).map(\.type), [1])
        // Fewer than 4 bytes after the last attribute (a torn header) are left alone.
        XCTAssertEqual(walk(Self.tlv(1, [1]) + [8, 0]).map(\.type), [1])
        XCTAssertEqual(walk(Array(whole.prefix(11))).map(\.type), [1])
    }

    func testALengthBelowFourEndsTheWalk() {
        for length: UInt16 in [0, 1, 2, 3] {
            let bad = Self.le16(length) + Self.le16(5) + [0, 0, 0, 0]
            XCTAssertTrue(walk(bad + Self.tlv(1, [1])).isEmpty, "length \(length) first")
            XCTAssertEqual(walk(Self.tlv(1, [1]) + bad + Self.tlv(2, [2])).map(\.type), [1], "length \(length) second")
        }
    }

    func testALengthPastTheEndEndsTheWalk() {
        let past = Self.le16(40) + Self.le16(1) + [1, 2, 3, 4]
        XCTAssertTrue(walk(past).isEmpty)
        XCTAssertEqual(walk(Self.tlv(2, [2]) + past).map(\.type), [2])
        XCTAssertTrue(walk(Self.le16(0xffff) + Self.le16(1)).isEmpty)
        // In a nested attribute, the bound is the parent's payload, not the buffer.
        let parent = Self.tlv(3 | Self.nested, Self.tlv(1, [1]) + Self.le16(12) + Self.le16(2) + [0, 0, 0, 0])
        let trailing = Self.tlv(4, [0, 0, 0, 0])
        let attributes = NetlinkAttributes((parent + trailing)[...])
        XCTAssertEqual(attributes.map(\.type), [3, 4])
        XCTAssertEqual(attributes[0].nested.map(\.type), [1])
    }

    func testEmptyPayloads() {
        XCTAssertTrue(walk([]).isEmpty)
        XCTAssertTrue(walk([4, 0, 1]).isEmpty)
        XCTAssertTrue(NetlinkAttributes(message: [], familyHeaderLength: 4).isEmpty)
        // A message no longer than its headers, and one shorter than them.
        let bare = Self.message(type: 0x0a0f, [0, 0, 0, 0])
        XCTAssertTrue(NetlinkAttributes(message: bare, familyHeaderLength: 4).isEmpty)
        XCTAssertTrue(NetlinkAttributes(message: Array(bare.prefix(18)), familyHeaderLength: 4).isEmpty)
        XCTAssertTrue(walk(Self.tlv(5 | Self.nested, []))[0].nested.isEmpty, "an empty nested attribute")
    }

    func testAttributesOfAMessageStartAfterThePaddedFamilyHeader() {
        // A 5-byte family header is padded to 8, so attributes start at 24.
        let bytes = Self.message(type: 1, [9, 9, 9, 9, 9, 0, 0, 0] + Self.tlv(6, [6]))
        let attributes = NetlinkAttributes(message: bytes, familyHeaderLength: 5)
        XCTAssertEqual(attributes.map(\.type), [6])
        XCTAssertEqual(attributes[0].payload.startIndex, 28, "payloads index the message itself")
    }

    // MARK: - The decoders on it

    /// NLMSG_ERROR (2) with NLM_F_ACK_TLVS (0x200): errno, then the request's
    /// header (NETLINK_CAP_ACK: no payload), then attributes.
    static func extendedAck(_ attributes: [UInt8], flags: UInt16 = 0x200) -> NetlinkReply {
        let body = le32(UInt32(bitPattern: -22)) + le32(16) + le16(0x0a00) + le16(0) + le32(9) + le32(0) + attributes
        return NetlinkReply(type: 2, flags: flags, seq: 9, bytes: message(type: 2, flags: flags, body))
    }

    func testExtendedAckText() {
        let text = Array("Could not process rule: No such file or directory".utf8) + [0]
        // NLMSGERR_ATTR_OFFS (2) first, then NLMSGERR_ATTR_MSG (1).
        let reply = Self.extendedAck(Self.tlv(2, Self.le32(20)) + Self.tlv(1, text))
        XCTAssertEqual(reply.errorCode, 22)
        XCTAssertEqual(reply.extendedAckMessage, "Could not process rule: No such file or directory")
        XCTAssertNil(Self.extendedAck(Self.tlv(1, text), flags: 0).extendedAckMessage, "no NLM_F_ACK_TLVS, no text")
        XCTAssertNil(Self.extendedAck(Self.tlv(2, Self.le32(20))).extendedAckMessage)
        XCTAssertNil(Self.extendedAck(Self.le16(2) + Self.le16(2) + Self.tlv(1, text)).extendedAckMessage,
                     "nothing is read past a malformed attribute")
        XCTAssertNil(NetlinkReply(type: 2, flags: 0x200, seq: 9, bytes: Self.message(type: 2, [1, 2])).extendedAckMessage)
    }

    func testNftNotificationTableAndGeneration() {
        // NFNL_SUBSYS_NFTABLES (10) << 8 | NFT_MSG_NEWTABLE (0), family inet (1).
        var touched = Set<TableRef>()
        let newTable = Self.message(type: 10 << 8, [1, 0, 0, 0] + Self.tlv(1, Self.cString) + Self.tlv(2, Self.be32(0)))
        XCTAssertNil(NftNotification.decode(newTable, touched: &touched))
        XCTAssertEqual(touched, [TableRef(family: .inet, name: "flowctl")])
        // NFT_MSG_NEWGEN (15): NFTA_GEN_ID 1, NFTA_GEN_PROC_PID 2, NFTA_GEN_PROC_NAME 3.
        let newgen = Self.message(type: 10 << 8 | 15, [0, 0, 0, 0] + Self.tlv(1, Self.be32(77))
                                  + Self.tlv(2, Self.be32(4242)) + Self.tlv(3, Array("nft".utf8) + [0]))
        XCTAssertEqual(NftNotification.decode(newgen, touched: &touched),
                       .commit(RulesetCommit(generation: 77, pid: 4242, tables: [TableRef(family: .inet, name: "flowctl")])))
        XCTAssertTrue(touched.isEmpty)
        // A NEWGEN whose generation attribute is short yields nothing; a missing pid reads 0.
        let short = Self.message(type: 10 << 8 | 15, [0, 0, 0, 0] + Self.tlv(1, [0, 1]))
        XCTAssertNil(NftNotification.decode(short, touched: &touched))
        let noPID = Self.message(type: 10 << 8 | 15, [0, 0, 0, 0] + Self.tlv(1, Self.be32(5)))
        XCTAssertEqual(NftNotification.decode(noPID, touched: &touched), .commit(RulesetCommit(generation: 5, pid: 0, tables: [])))
        // The last attribute of a type wins, as before.
        XCTAssertEqual(NftNotification.attributes(Self.message(type: 10 << 8, [1, 0, 0, 0] + Self.tlv(1, [1]) + Self.tlv(1, [2])))[1]?.u8, 2)
    }

    /// An IPCTNL_MSG_CT_NEW (NFNL_SUBSYS_CTNETLINK 1 << 8 | 0) entry, AF_INET.
    static func conntrackEntry(_ attributes: [UInt8]) -> [UInt8] {
        message(type: 1 << 8, [2, 0, 0, 0] + attributes)
    }

    func testConntrackStatus() {
        // CTA_TUPLE_ORIG (1, nested) and CTA_TUPLE_REPLY (2, nested) before
        // CTA_STATUS (3), as the kernel sends them; IPS_OFFLOAD is bit 14.
        let tuple = Self.tlv(1 | Self.nested, Self.tlv(1 | Self.nested, Self.tlv(1, Self.be32(0x0a00_0001))))
        let status: UInt32 = 1 << 14 | 1 << 3 | 1 << 1
        let entry = Self.conntrackEntry(tuple + Self.tlv(2 | Self.nested, []) + Self.tlv(3, Self.be32(status))
                                        + Self.tlv(7, Self.be32(120)))
        XCTAssertEqual(ConntrackReader.status(entry), status)
        XCTAssertEqual(ConntrackReader.status(entry)! & ConntrackReader.IPS_OFFLOAD, 1 << 14)
        XCTAssertNil(ConntrackReader.status(Self.conntrackEntry(tuple)))
        XCTAssertNil(ConntrackReader.status(Array(entry.prefix(20))))
        // A CTA_STATUS past a malformed attribute is not read.
        XCTAssertNil(ConntrackReader.status(Self.conntrackEntry(Self.le16(3) + Self.le16(1) + Self.tlv(3, Self.be32(status)))))
        // A short CTA_STATUS is passed over for a later whole one, as before.
        XCTAssertEqual(ConntrackReader.status(Self.conntrackEntry(Self.tlv(3, [1, 2]) + Self.tlv(3, Self.be32(8)))), 8)
    }

    func testBridgePortVLANsAndState() {
        // ifinfomsg: AF_BRIDGE (7), type, index 12, flags, change.
        let info: [UInt8] = [7, 0] + Self.le16(1) + Self.le32(12) + Self.le32(0) + Self.le32(0)
        // bridge_vlan_info (flags, vid): PVID|UNTAGGED (2|4) vid 1; RANGE_BEGIN (8) 10 ... RANGE_END (16) 12.
        func vlan(_ flags: UInt16, _ vid: UInt16) -> [UInt8] { Self.tlv(2, Self.le16(flags) + Self.le16(vid)) }
        // IFLA_AF_SPEC (26): IFLA_BRIDGE_FLAGS (0) then VLAN infos (2); IFLA_PROTINFO (12): IFLA_BRPORT_STATE (1).
        let spec = Self.tlv(26 | Self.nested, Self.tlv(0, Self.le16(0)) + vlan(6, 1) + vlan(8, 10) + vlan(16, 12) + Self.tlv(2, [1]))
        let protinfo = Self.tlv(12 | Self.nested, Self.tlv(4, [0]) + Self.tlv(1, [3]))
        let message = Self.message(type: 16, info + Self.tlv(3, Self.cString) + spec + protinfo)
        XCTAssertEqual(BridgeMessage.port(message), .bridgePort(index: 12, BridgePortInfo(
            vlans: BridgeVLANs(vids: [1, 10, 11, 12], pvid: 1, untagged: [1]), state: 3)))
        // Without either attribute: the bridge itself, no VLAN information.
        XCTAssertEqual(BridgeMessage.port(Self.message(type: 16, info)),
                       .bridgePort(index: 12, BridgePortInfo(vlans: nil, state: nil)))
        XCTAssertNil(BridgeMessage.port(Array(message.prefix(30))), "shorter than its ifinfomsg")
        // A truncated IFLA_PROTINFO: the VLANs before it are still read, the state is not.
        XCTAssertEqual(BridgeMessage.port(Array(message.dropLast(4))), .bridgePort(index: 12, BridgePortInfo(
            vlans: BridgeVLANs(vids: [1, 10, 11, 12], pvid: 1, untagged: [1]), state: nil)))
    }
}
