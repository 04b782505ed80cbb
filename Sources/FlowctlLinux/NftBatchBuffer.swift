import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// An nftnl_batch being filled: BATCH_BEGIN (with the generation id when
/// given), one message per step, and BATCH_END unless it is a dry run.
final class BatchBuffer {
    private let batch: OpaquePointer
    /// Sequence number of each message and the index of its step.
    private(set) var steps: [(seq: UInt32, change: Int)] = []
    private(set) var beginSeq: UInt32 = 0

    /// `largestMessage`: an upper bound of the biggest message's size; a
    /// message must fit in a page's overrun area (a flowtable with thousands
    /// of devices is one large message).
    init(largestMessage: Int) {
        let overrun = max(Int(flowctl_mnl_socket_buffer_size()), largestMessage)
        batch = nftnl_batch_alloc(UInt32(max(sysconf(Int32(_SC_PAGESIZE)), 65536)), UInt32(overrun))!
    }

    /// Upper bound of the size of a step's messages.
    static func estimatedSize(_ change: NftChange) -> Int {
        let header = 512
        switch change {
        case .addFlowtable(let spec): return header + spec.devices.count * (NftConst.IFNAMSIZ + 8)
        case .addFlowtableDevices(_, let devices), .deleteFlowtableDevices(_, let devices):
            return header + devices.count * (NftConst.IFNAMSIZ + 8)
        case .addSet(let set): return header + set.elements.count * (NftConst.IFNAMSIZ + 24)
        case .addSetElements(_, let elements), .deleteSetElements(_, let elements):
            return header + elements.count * (NftConst.IFNAMSIZ + 24)
        default: return header
        }
    }

    deinit { nftnl_batch_free(batch) }

    private var cursor: UnsafeMutableRawPointer { nftnl_batch_buffer(batch) }

    private func advance() { _ = nftnl_batch_update(batch) }

    func begin(seq: UInt32, generation: UInt32?) {
        beginSeq = seq
        let nlh = mnl_nlmsg_put_header(cursor)!
        nlh.pointee.nlmsg_type = NftConst.NFNL_MSG_BATCH_BEGIN
        nlh.pointee.nlmsg_flags = NftConst.NLM_F_REQUEST
        nlh.pointee.nlmsg_seq = seq
        let nfg = mnl_nlmsg_put_extra_header(nlh, 4)!.assumingMemoryBound(to: UInt8.self)
        nfg[0] = 0  // AF_UNSPEC
        nfg[1] = 0  // NFNETLINK_V0
        let subsystem = NftConst.NFNL_SUBSYS_NFTABLES.bigEndian
        withUnsafeBytes(of: subsystem) { nfg[2] = $0[0]; nfg[3] = $0[1] }
        if let generation { mnl_attr_put_u32(nlh, NftConst.NFNL_BATCH_GENID, generation.bigEndian) }
        advance()
    }

    func end(seq: UInt32) {
        let nlh = mnl_nlmsg_put_header(cursor)!
        nlh.pointee.nlmsg_type = NftConst.NFNL_MSG_BATCH_END
        nlh.pointee.nlmsg_flags = NftConst.NLM_F_REQUEST
        nlh.pointee.nlmsg_seq = seq
        let nfg = mnl_nlmsg_put_extra_header(nlh, 4)!.assumingMemoryBound(to: UInt8.self)
        nfg[0] = 0
        nfg[1] = 0
        let subsystem = NftConst.NFNL_SUBSYS_NFTABLES.bigEndian
        withUnsafeBytes(of: subsystem) { nfg[2] = $0[0]; nfg[3] = $0[1] }
        advance()
    }

    func add(_ message: NftMessage, seq: UInt32, change: Int) {
        let nlh = nftnl_nlmsg_build_hdr(cursor.assumingMemoryBound(to: CChar.self), message.type, message.family,
                                        message.flags, seq)!
        message.object.buildPayload(nlh)
        message.object.free()
        steps.append((seq, change))
        advance()
    }

    func iovecs() -> [iovec] {
        let count = Int(nftnl_batch_iovec_len(batch))
        var vectors = [iovec](repeating: iovec(), count: count)
        vectors.withUnsafeMutableBufferPointer { nftnl_batch_iovec(batch, $0.baseAddress, UInt32(count)) }
        return vectors
    }
}
