import CLibMnl
import FlowctlCore
import Glibc

/// Conntrack figures through ctnetlink (libmnl) without copying every
/// entry: the count and the limit come from /proc/sys/net/netfilter, and
/// the offloaded entries from a dump the kernel filters on CTA_STATUS /
/// CTA_STATUS_MASK (5.19+; an older kernel ignores the filter and sends
/// every entry, whose status is checked here anyway). The dump is counted
/// as it arrives, a datagram at a time: memory stays flat at any size.
public struct ConntrackReader: ConntrackSource {
    public init() {}

    static let NFNL_SUBSYS_CTNETLINK = UInt16(CLibMnl.NFNL_SUBSYS_CTNETLINK)
    static let IPCTNL_MSG_CT_GET = UInt16(CLibMnl.IPCTNL_MSG_CT_GET.rawValue)
    static let CTA_STATUS = UInt16(CLibMnl.CTA_STATUS.rawValue)
    static let CTA_STATUS_MASK = UInt16(CLibMnl.CTA_STATUS_MASK.rawValue)
    static let IPS_OFFLOAD = UInt32(CLibMnl.IPS_OFFLOAD.rawValue)
    static let IPS_HW_OFFLOAD = UInt32(CLibMnl.IPS_HW_OFFLOAD.rawValue)

    public func summary() throws -> ConntrackSummary {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try dump(statusFilter: Self.IPS_OFFLOAD)
            } catch let error as KernelError where (error.errno == ENOBUFS || error.errno == EINTR) && attempt < 3 {
                continue
            }
        }
    }

    public func capacity() -> (count: Int?, max: Int?) {
        (Self.readInt("/proc/sys/net/netfilter/nf_conntrack_count"), Self.readInt("/proc/sys/net/netfilter/nf_conntrack_max"))
    }

    private func dump(statusFilter: UInt32? = nil) throws -> ConntrackSummary {
        let operation = "dump conntrack through ctnetlink"
        let socket = try NetfilterSocket(operation: operation)
        let seq = socket.allocateSeq()
        // The request through libmnl: header, nfgenmsg (AF_UNSPEC: IPv4 and
        // IPv6, version 0), and the optional status filter attributes.
        var request = [UInt8](repeating: 0, count: 64)
        let length = request.withUnsafeMutableBytes { raw -> Int in
            let nlh = mnl_nlmsg_put_header(raw.baseAddress)!
            nlh.pointee.nlmsg_type = Self.NFNL_SUBSYS_CTNETLINK << 8 | Self.IPCTNL_MSG_CT_GET
            nlh.pointee.nlmsg_flags = NftConst.NLM_F_REQUEST | NftConst.NLM_F_DUMP
            nlh.pointee.nlmsg_seq = seq
            _ = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<nfgenmsg>.size)
            if let statusFilter {
                mnl_attr_put_u32(nlh, Self.CTA_STATUS, statusFilter.bigEndian)
                mnl_attr_put_u32(nlh, Self.CTA_STATUS_MASK, statusFilter.bigEndian)
            }
            return Int(nlh.pointee.nlmsg_len)
        }
        var entries = 0, offloaded = 0, hardware = 0
        do {
            try request.withUnsafeBytes {
                try socket.exchange(UnsafeRawBufferPointer(rebasing: $0[..<length]), seq: seq, operation: operation) { reply in
                    entries += 1
                    let status = Self.status(reply.bytes) ?? 0
                    if status & Self.IPS_OFFLOAD != 0 { offloaded += 1 }
                    if status & Self.IPS_HW_OFFLOAD != 0 { hardware += 1 }
                    return true
                }
            }
        } catch var error as KernelError {
            if [ENOENT, EOPNOTSUPP, EPROTONOSUPPORT].contains(error.errno) {
                error.hint = "conntrack is not available: load nf_conntrack_netlink (CONFIG_NF_CT_NETLINK)"
            }
            throw error
        }
        // Entries: the kernel's count (the dump held only the offloaded ones).
        let (count, max) = capacity()
        return ConntrackSummary(entries: count ?? entries, offloaded: offloaded, hardwareOffloaded: hardware,
                                count: count, max: max)
    }

    /// CTA_STATUS of one ctnetlink message (attributes after the netlink
    /// header and nfgenmsg), host order: the first with four bytes or more.
    static func status(_ bytes: [UInt8]) -> UInt32? {
        NetlinkAttributes(message: bytes, familyHeaderLength: MemoryLayout<nfgenmsg>.size)
            .lazy.filter { $0.type == CTA_STATUS }.compactMap(\.bigEndianU32).first
    }

    static func readInt(_ path: String) -> Int? { ProcFile.value(path).flatMap { Int($0) } }
}

/// A small /proc or /sys file's value, white space removed (nil when unreadable).
enum ProcFile {
    static func value(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self).filter { !$0.isWhitespace }
    }
}

extension Doctor.Host {
    /// This process and this host's /proc/sys/net.
    public static let linux = Doctor.Host(isRoot: geteuid() == 0) { ProcFile.value("/proc/sys/net/" + $0) }
}
