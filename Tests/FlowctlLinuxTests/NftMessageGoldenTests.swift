@testable import FlowctlLinux
import FlowctlCore
import XCTest

/// The netlink messages flowctl builds, as libnftnl prints them. The rule's
/// text is what `nft --debug=netlink add rule inet flowctl forward iifname
/// @offload_ifaces ct direction original meta l4proto tcp counter flow add
/// @fastpath` prints
/// (checked in the lab), so flowctl's rule means exactly that nft rule.
final class NftMessageGoldenTests: XCTestCase {
    let table = FlowctlNames.table

    func testOffloadRuleMatchesNftExpressions() {
        let rule = OffloadRule(chain: "forward", direction: .input, l4proto: .tcp, interfaceSet: "offload_ifaces",
                               flowtable: "fastpath")
        let text = NftablesBackend.debugText(for: .addRule(rule), in: table)
        XCTAssertEqual(text, ["""
            inet flowctl forward
              [ meta load iifname => reg 1 ]
              [ lookup reg 1 set offload_ifaces ]
              [ ct load direction => reg 1 ]
              [ cmp eq reg 1 0x00000000 ]
              [ meta load l4proto => reg 1 ]
              [ cmp eq reg 1 0x00000006 ]
              [ counter pkts 0 bytes 0 ]
              [ flow_offload flowtable fastpath ]
              userdata = { \\x00\\x17flowctl/v2 iifname tcp\\x00 }
            """])
    }

    func testOutputUDPRuleUsesOifnameAndProtocol17() throws {
        let rule = OffloadRule(chain: "forward", direction: .output, l4proto: .udp, interfaceSet: "s", flowtable: "f")
        let text = try XCTUnwrap(NftablesBackend.debugText(for: .addRule(rule), in: table).first)
        XCTAssertTrue(text.contains("[ meta load oifname => reg 1 ]"), text)
        XCTAssertTrue(text.contains("[ cmp eq reg 1 0x00000011 ]"), text)
        XCTAssertTrue(text.contains("[ flow_offload flowtable f ]"), text)
    }

    /// FlowctlCore's canonical rule content (`OffloadRule.expressions`, what the
    /// diff compares kernel rules with) is exactly what the rule flowctl sends
    /// reads back as, through the parser of kernel dumps, for every direction
    /// and protocol; counter values do not change it.
    func testBuiltRuleReadsBackAsOffloadRuleExpressions() throws {
        for direction in [OffloadRule.Direction.input, .output] {
            for l4proto in [L4Protocol.tcp, .udp] {
                let rule = OffloadRule(chain: "forward", direction: direction, l4proto: l4proto,
                                       interfaceSet: "offload_ifaces", flowtable: "fastpath")
                let parsed = try XCTUnwrap(NftParse.rule(NftBuild.dumpedRule(table, rule, handle: 7, packets: 12,
                                                                             bytes: 3400)))
                XCTAssertEqual(parsed.table, "flowctl")
                XCTAssertEqual(parsed.rule, KernelRule(chain: "forward", handle: 7, comment: rule.id,
                                                       expressions: rule.expressions, packets: 12, bytes: 3400))
                XCTAssertTrue(parsed.rule.matches(rule))
                // The same text as libnftnl's printout of the whole rule, less brackets and counter values.
                let printed = try XCTUnwrap(NftablesBackend.debugText(for: .addRule(rule), in: table).first)
                    .split(separator: "\n").filter { $0.hasPrefix("  [ ") }
                    .map { String($0.dropFirst(4).dropLast(2)) }
                XCTAssertEqual(printed.map { $0.hasPrefix("counter ") ? "counter" : $0 }, rule.expressions)
            }
        }
    }

    func testFlowtableCarriesDevicesCounterFlagAndIngressHook() throws {
        let spec = FlowtableSpec(name: "fastpath", priority: 0, devices: ["vnet1", "up0"], counter: true)
        let text = try XCTUnwrap(NftablesBackend.debugText(for: .addFlowtable(spec), in: table).first)
        // flags 2 = NFT_FLOWTABLE_COUNTER; hook number 0 = NF_NETDEV_INGRESS.
        XCTAssertEqual(text, "flow table flowctl fastpath use 0 size 0 flags 2 hook prerouting prio 0  dev {  up0  vnet1  } ")
        let hardware = FlowtableSpec(name: "fastpath", devices: ["eth0"], counter: true, hardwareOffload: true)
        let hwText = try XCTUnwrap(NftablesBackend.debugText(for: .addFlowtable(hardware), in: table).first)
        XCTAssertTrue(hwText.contains("flags 3"), hwText)
    }

    func testSetWithElementsIsTwoMessagesWithPaddedIfnameKeys() {
        let text = NftablesBackend.debugText(
            for: .addSet(InterfaceSetSpec(name: "offload_ifaces", elements: ["br0"])), in: table)
        XCTAssertEqual(text.count, 2)
        // "br0" little-endian words, NUL padded to IFNAMSIZ.
        XCTAssertTrue(text[1].contains("element 00307262 00000000 00000000 00000000"), text[1])
        XCTAssertEqual(NftablesBackend.debugText(
            for: .addSet(InterfaceSetSpec(name: "offload_ifaces", elements: [])), in: table).count, 1)
    }

    func testTableCarriesFlags() throws {
        let spec = TableSpec(ref: table, flags: [.owner, .persist], comment: "c")
        let text = try XCTUnwrap(NftablesBackend.debugText(for: .addTable(spec), in: table).first)
        XCTAssertTrue(text.hasPrefix("table flowctl inet flags 6"), text)
    }

    func testUserDataCommentRoundTripAndForeignTLVs() {
        let encoded = UserData.encodeComment("managed by flowctl; do not edit")
        XCTAssertEqual(UserData.decodeComment(encoded), "managed by flowctl; do not edit")
        // A comment after another attribute (nft's set byte order, say).
        XCTAssertEqual(UserData.decodeComment([1, 4, 1, 0, 0, 0] + UserData.encodeComment("x")), "x")
        XCTAssertNil(UserData.decodeComment([1, 4, 1, 0, 0, 0]))
        XCTAssertNil(UserData.decodeComment([0, 9, 65]), "truncated TLV must not be read past its end")
    }

    func testIfnameKeys() {
        XCTAssertEqual(ifnameKey("br0").count, 16)
        XCTAssertEqual(ifname(fromKey: ifnameKey("br0.10")), "br0.10")
        XCTAssertEqual(ifname(fromKey: ifnameKey("abcdefghijklmnopq")), "abcdefghijklmno", "15 bytes + NUL")
    }

    func testNetlinkReplySplittingAndErrors() {
        // Two messages: an NLMSG_ERROR (errno 2, answering seq 7, with an
        // extended-ack text) and NLMSG_DONE.
        var error: [UInt8] = []
        func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        let text = Array("bad".utf8) + [0]
        let tlv = u16(UInt16(4 + text.count)) + u16(1) + text
        let body = u32(UInt32(bitPattern: -2)) + u32(16) + u16(0x10) + u16(0) + u32(7) + u32(0) + tlv
        error = u32(UInt32(16 + body.count)) + u16(2) + u16(0x200) + u32(7) + u32(0) + body
        while error.count % 4 != 0 { error.append(0) }
        let done = u32(20) + u16(3) + u16(0) + u32(8) + u32(0) + u32(0)
        let replies = (error + done).withUnsafeBytes { NetlinkReply.split($0) }
        XCTAssertEqual(replies.count, 2)
        XCTAssertEqual(replies[0].errorCode, 2)
        XCTAssertEqual(replies[0].erroredSeq, 7)
        XCTAssertEqual(replies[0].extendedAckMessage, "bad")
        XCTAssertEqual(replies[1].type, NetlinkReply.NLMSG_DONE)
        XCTAssertNil(replies[1].errorCode)
    }

    /// Found by the fuzzer (scripts/fuzz netlink-replies): an NLMSG_ERROR
    /// whose error field is Int32.min crashed negating it. An error field
    /// the kernel never sends (positive, or beyond -4095) reads as EPROTO.
    func testMalformedErrorCodesReadAsEPROTO() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/netlink-replies-crash-errno-min.bin")
        let crash = [UInt8](try Data(contentsOf: fixture))
        let replies = crash.withUnsafeBytes { NetlinkReply.split($0) }
        XCTAssertEqual(replies.first?.errorCode, EPROTO)
        func error(_ code: Int32) -> NetlinkReply {
            var bytes = [UInt8](repeating: 0, count: 36)
            withUnsafeBytes(of: UInt32(36)) { bytes.replaceSubrange(0..<4, with: $0) }
            withUnsafeBytes(of: UInt16(2)) { bytes.replaceSubrange(4..<6, with: $0) }
            withUnsafeBytes(of: code) { bytes.replaceSubrange(16..<20, with: $0) }
            return NetlinkReply(type: 2, flags: 0, seq: 1, bytes: bytes)
        }
        XCTAssertEqual(error(0).errorCode, 0, "an ack")
        XCTAssertEqual(error(-2).errorCode, 2)
        XCTAssertEqual(error(-4095).errorCode, 4095)
        XCTAssertEqual(error(Int32.min).errorCode, EPROTO)
        XCTAssertEqual(error(-4096).errorCode, EPROTO)
        XCTAssertEqual(error(5).errorCode, EPROTO)
    }
}
