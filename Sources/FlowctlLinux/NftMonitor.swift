import CLibMnl
import FlowctlCore
import Glibc

/// nftables notifications (NFNLGRP_NFTABLES): every commit by any process,
/// with the tables it touched, so the daemon notices `nft flush ruleset` or
/// `nft delete table inet flowctl` and repairs it at once.
public final class NftablesMonitor: RulesetEventSource {
    private let socket: NetfilterSocket
    /// Tables touched by the transaction whose NEWGEN has not arrived yet.
    private var touched = Set<TableRef>()

    static let NFNLGRP_NFTABLES: UInt32 = 7

    public init() throws {
        socket = try NetfilterSocket(operation: "subscribe to nftables notifications",
                                     groups: 1 << (Self.NFNLGRP_NFTABLES - 1))
        socket.reserveReceiveBuffer(8 << 20)
    }

    public var pollDescriptor: Int32 { socket.fd }

    public func drain() throws -> [RulesetEvent] {
        var events: [RulesetEvent] = []
        while true {
            let replies: [NetlinkReply]?
            do {
                replies = try socket.receiveNow(operation: "read nftables notifications")
            } catch let error as KernelError where error.errno == ENOBUFS {
                touched.removeAll()
                events.append(.lost(reason: "ENOBUFS"))
                continue
            }
            guard let replies else { return events }
            for reply in replies {
                if let event = NftNotification.decode(reply.bytes, touched: &touched) { events.append(event) }
            }
        }
    }
}

/// Decoding of nftables notification messages (pure; unit tested).
enum NftNotification {
    static let NFT_MSG_NEWGEN: UInt16 = 15

    /// Netlink attributes after the 16-byte header and 4-byte nfgenmsg.
    static func attributes(_ bytes: [UInt8]) -> [UInt16: [UInt8]] {
        var result: [UInt16: [UInt8]] = [:]
        var offset = 20
        while offset + 4 <= bytes.count {
            let length = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3fff
            guard length >= 4, offset + length <= bytes.count else { break }
            result[type] = Array(bytes[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        return result
    }

    static func string(_ value: [UInt8]?) -> String? {
        value.map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func bigEndianU32(_ value: [UInt8]?) -> UInt32? {
        guard let value, value.count >= 4 else { return nil }
        return value.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// One notification: object messages add their table to `touched`;
    /// NEWGEN closes the transaction and yields a commit.
    static func decode(_ bytes: [UInt8], touched: inout Set<TableRef>) -> RulesetEvent? {
        guard bytes.count >= 20 else { return nil }
        let type = UInt16(bytes[4]) | UInt16(bytes[5]) << 8
        guard type >> 8 == NftConst.NFNL_SUBSYS_NFTABLES else { return nil }
        let message = type & 0xff
        let attrs = attributes(bytes)
        if message == NFT_MSG_NEWGEN {
            defer { touched.removeAll() }
            guard let generation = bigEndianU32(attrs[1]) else { return nil }
            return .commit(RulesetCommit(generation: generation, pid: bigEndianU32(attrs[2]) ?? 0, tables: touched))
        }
        // Every nf_tables object message names its table in attribute 1
        // (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE,
        // NFTA_SET_ELEM_LIST_TABLE, NFTA_FLOWTABLE_TABLE, NFTA_OBJ_TABLE).
        if let family = NftConst.family(raw: UInt32(bytes[16])), let name = string(attrs[1]) {
            touched.insert(TableRef(family: family, name: name))
        }
        return nil
    }
}

/// The calling thread's id, as nftables notifications report the committer
/// (NFTA_GEN_PROC_PID is the thread, not the process).
public func currentThreadID() -> UInt32 { UInt32(flowctl_gettid()) }
