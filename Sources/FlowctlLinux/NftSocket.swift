import CLibMnl
import FlowctlCore
import Glibc

/// One reply message from a netfilter netlink socket, copied out of the
/// receive buffer (internal: raw bytes never leave FlowctlLinux).
struct NetlinkReply {
    var type: UInt16
    var flags: UInt16
    var seq: UInt32
    /// The whole message, header included.
    var bytes: [UInt8]

    static let headerLength = 16
    static let NLMSG_ERROR = UInt16(CLibMnl.NLMSG_ERROR)
    static let NLMSG_DONE = UInt16(CLibMnl.NLMSG_DONE)
    static let NLM_F_DUMP_INTR = UInt16(CLibMnl.NLM_F_DUMP_INTR)
    static let NLM_F_ACK_TLVS = UInt16(CLibMnl.NLM_F_ACK_TLVS)
    static let NLMSGERR_ATTR_MSG = UInt16(CLibMnl.NLMSGERR_ATTR_MSG.rawValue)

    /// For NLMSG_ERROR: the (positive) errno, 0 for an ack. The kernel
    /// sends 0 or a negative errno; any other value (Int32.min, whose
    /// negation overflowed, was found by the fuzzer) is a malformed message: EPROTO.
    var errorCode: Int32? {
        guard type == Self.NLMSG_ERROR, bytes.count >= Self.headerLength + 4 else { return nil }
        let raw = bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Self.headerLength, as: Int32.self) }
        guard raw <= 0, raw > -4096 else { return EPROTO }
        return -raw
    }

    /// For NLMSG_ERROR: the sequence number of the message it answers.
    var erroredSeq: UInt32? {
        guard type == Self.NLMSG_ERROR, bytes.count >= Self.headerLength + 4 + 16 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Self.headerLength + 4 + 8, as: UInt32.self) }
    }

    /// The extended ack's text (NLMSGERR_ATTR_MSG), when the kernel sent one.
    /// The socket sets NETLINK_CAP_ACK, so attributes follow struct nlmsgerr.
    var extendedAckMessage: String? {
        guard type == Self.NLMSG_ERROR, flags & Self.NLM_F_ACK_TLVS != 0 else { return nil }
        return NetlinkAttributes(message: bytes, familyHeaderLength: MemoryLayout<nlmsgerr>.size)
            .first(ofType: Self.NLMSGERR_ATTR_MSG)?.string
    }

    /// Splits a datagram into messages.
    static func split(_ buffer: UnsafeRawBufferPointer) -> [NetlinkReply] {
        var replies: [NetlinkReply] = []
        var offset = 0
        while offset + headerLength <= buffer.count {
            let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerLength, offset + length <= buffer.count else { break }
            replies.append(NetlinkReply(
                type: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
                flags: buffer.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self),
                seq: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
                bytes: Array(buffer[offset..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return replies
    }
}


/// A NETLINK_NETFILTER socket through libmnl, used for one operation and
/// closed. Every request carries a fresh sequence number; replies are
/// matched on it and on our port id.
final class NetfilterSocket {
    private let nl: OpaquePointer
    let portID: UInt32
    private var nextSeq: UInt32
    private var buffer: [UInt8]

    /// `groups`: a bitmask of multicast groups to join (bit n-1 for group n).
    init(operation: String, groups: UInt32 = 0) throws {
        guard let nl = mnl_socket_open(NETLINK_NETFILTER) else {
            throw KernelError.system(operation + ": open netlink socket", errno)
        }
        guard mnl_socket_bind(nl, groups, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let code = errno
            mnl_socket_close(nl)
            throw KernelError.system(operation + ": bind netlink socket", code)
        }
        self.nl = nl
        portID = mnl_socket_get_portid(nl)
        nextSeq = UInt32(truncatingIfNeeded: time(nil))
        buffer = [UInt8](repeating: 0, count: 1 << 16)
        var on: Int32 = 1
        // Errors carry the kernel's text; acks do not echo the request.
        _ = mnl_socket_setsockopt(nl, Int32(NETLINK_EXT_ACK), &on, socklen_t(MemoryLayout<Int32>.size))
        _ = mnl_socket_setsockopt(nl, Int32(NETLINK_CAP_ACK), &on, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(nl) }

    var fd: Int32 { mnl_socket_get_fd(nl) }

    /// Receives one datagram without waiting; nil when nothing is queued.
    /// ENOBUFS (notifications dropped) is thrown as a KernelError.
    func receiveNow(operation: String) throws -> [NetlinkReply]? {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw KernelError.system(operation, errno)
        }
        return buffer.withUnsafeBytes { NetlinkReply.split(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    func allocateSeq(_ count: Int = 1) -> UInt32 {
        let first = nextSeq
        nextSeq &+= UInt32(count)
        return first
    }

    /// Room for at least `bytes` of replies (acks of a large batch).
    func reserveReceiveBuffer(_ bytes: Int) { reserveNetlinkReceiveBuffer(fd, bytes) }

    func reserveSendBuffer(_ bytes: Int) {
        guard bytes > 200_000 else { return }
        var size = Int32(clamping: bytes)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer, operation: String) throws {
        let sent = mnl_socket_sendto(nl, bytes.baseAddress, bytes.count)
        guard sent == bytes.count else { throw KernelError.system(operation, sent < 0 ? errno : EMSGSIZE) }
    }

    /// Sends several buffers as one datagram (a batch spanning pages).
    func send(iovecs: inout [iovec], operation: String) throws {
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let total = iovecs.reduce(0) { $0 + $1.iov_len }
        let sent = withUnsafeMutablePointer(to: &address) { addressPointer in
            iovecs.withUnsafeMutableBufferPointer { vectors in
                var message = msghdr()
                message.msg_name = UnsafeMutableRawPointer(addressPointer)
                message.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
                message.msg_iov = vectors.baseAddress
                message.msg_iovlen = vectors.count
                return sendmsg(fd, &message, 0)
            }
        }
        guard sent == total else { throw KernelError.system(operation, sent < 0 ? errno : EMSGSIZE) }
    }

    /// Waits up to `timeoutMs` (0: only what is already queued) and returns
    /// the next datagram's messages addressed to us; nil when none came.
    func receive(timeoutMs: Int32, operation: String) throws -> [NetlinkReply]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&poller, 1, timeoutMs)
            if ready < 0 {
                if errno == EINTR { continue }
                throw KernelError.system(operation, errno)
            }
            if ready == 0 { return nil }
            break
        }
        let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(nl, $0.baseAddress, $0.count) }
        guard count >= 0 else {
            throw KernelError.system(operation, errno,
                              hint: errno == ENOBUFS ? "netlink replies were lost; try again" : nil)
        }
        return buffer.withUnsafeBytes { NetlinkReply.split(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            .filter { $0.seq != 0 || $0.type == NetlinkReply.NLMSG_ERROR }
    }

    /// Sends one request and collects the replies up to NLMSG_DONE (for a
    /// dump) or the single answer. Throws the kernel's error.
    func request(_ message: UnsafeRawBufferPointer, seq: UInt32, dump: Bool, operation: String) throws
        -> [NetlinkReply]
    {
        var collected: [NetlinkReply] = []
        try exchange(message, seq: seq, operation: operation) { reply in
            collected.append(reply)
            return dump
        }
        return collected
    }

    /// Sends one request and hands each reply to `each` as it arrives (a
    /// datagram at a time: a dump of any size takes no more memory than
    /// one datagram), until NLMSG_DONE, the ack, or `each` returns false.
    /// Throws the kernel's error.
    func exchange(_ message: UnsafeRawBufferPointer, seq: UInt32, operation: String,
                  each: (NetlinkReply) throws -> Bool) throws {
        try send(message, operation: operation)
        while true {
            guard let replies = try receive(timeoutMs: 5000, operation: operation) else {
                throw KernelError.system(operation, ETIMEDOUT, hint: "the kernel did not answer within 5 s")
            }
            for reply in replies where reply.seq == seq {
                if reply.flags & NetlinkReply.NLM_F_DUMP_INTR != 0 {
                    throw KernelError.system(operation, EINTR, hint: "the ruleset changed during the dump")
                }
                switch reply.type {
                case NetlinkReply.NLMSG_DONE:
                    return
                case NetlinkReply.NLMSG_ERROR:
                    let code = reply.errorCode ?? EPROTO
                    if code == 0 { return }
                    throw KernelError(operation: operation, errno: code, reason: String(cString: strerror(code)),
                                      hint: reply.extendedAckMessage)
                default:
                    if try !each(reply) { return }
                }
            }
        }
    }
}

/// Room for at least `bytes` of netlink messages on `fd`, past
/// net.core.rmem_max: SO_RCVBUFFORCE needs CAP_NET_ADMIN, which every caller
/// has anyway; SO_RCVBUF (capped) otherwise.
func reserveNetlinkReceiveBuffer(_ fd: Int32, _ bytes: Int) {
    var size = Int32(clamping: bytes)
    if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
}
