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

    static let NFNLGRP_NFTABLES = UInt32(CLibMnl.NFNLGRP_NFTABLES.rawValue)

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
    static let NFT_MSG_NEWGEN = UInt16(CLibMnl.NFT_MSG_NEWGEN.rawValue)

    static let NFTA_GEN_ID = UInt16(CLibMnl.NFTA_GEN_ID.rawValue)
    static let NFTA_GEN_PROC_PID = UInt16(CLibMnl.NFTA_GEN_PROC_PID.rawValue)
    /// Every nf_tables object message names its table in the same attribute
    /// (NFTA_TABLE_NAME = NFTA_CHAIN_TABLE = NFTA_RULE_TABLE = NFTA_SET_TABLE =
    /// NFTA_SET_ELEM_LIST_TABLE = NFTA_FLOWTABLE_TABLE = NFTA_OBJ_TABLE).
    static let NFTA_TABLE_NAME = UInt16(CLibMnl.NFTA_TABLE_NAME.rawValue)

    /// Netlink attributes after the netlink header and nfgenmsg, by type
    /// (the last of a type wins).
    static func attributes(_ bytes: [UInt8]) -> [UInt16: NetlinkAttribute] {
        Dictionary(NetlinkAttributes(message: bytes, familyHeaderLength: MemoryLayout<nfgenmsg>.size)
            .map { ($0.type, $0) }, uniquingKeysWith: { $1 })
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
            guard let generation = attrs[NFTA_GEN_ID]?.bigEndianU32 else { return nil }
            return .commit(RulesetCommit(generation: generation, pid: attrs[NFTA_GEN_PROC_PID]?.bigEndianU32 ?? 0,
                                         tables: touched))
        }
        if let family = NftConst.family(raw: UInt32(bytes[16])), let name = attrs[NFTA_TABLE_NAME]?.string {
            touched.insert(TableRef(family: family, name: name))
        }
        return nil
    }
}

/// The calling thread's id, as nftables notifications report the committer
/// (NFTA_GEN_PROC_PID is the thread, not the process).
public func currentThreadID() -> UInt32 { UInt32(flowctl_gettid()) }
