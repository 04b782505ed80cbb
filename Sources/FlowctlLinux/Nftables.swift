import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// flowctl's nf_tables edge over libnftnl and libmnl: reads one table with
/// everything in it, lists forward chains, and sends batches atomically
/// with the ruleset generation check.
public struct NftablesBackend: RulesetBackend {
    public init() {}

    // MARK: Reading

    public func generation() throws -> UInt32 {
        let operation = "read the nftables ruleset generation"
        let socket = try NetfilterSocket(operation: operation)
        let replies = try request(socket, type: NftConst.msg(NFT_MSG_GETGEN), family: 0, dump: false,
                                  operation: operation) { _ in }
        guard let reply = replies.first, let id = NftParse.generation(reply) else {
            throw KernelError.system(operation, EPROTO)
        }
        return id
    }

    public func table(_ ref: TableRef) throws -> KernelTable? {
        // A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is read again.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try readTable(ref)
            } catch let error as KernelError where error.errno == EINTR && attempt < 3 {
                continue
            }
        }
    }

    private func readTable(_ ref: TableRef) throws -> KernelTable? {
        let what = "read table \(ref)"
        let socket = try NetfilterSocket(operation: what)
        let family = NftConst.family(ref.family)
        let tableReplies: [NetlinkReply]
        do {
            tableReplies = try request(socket, type: NftConst.msg(NFT_MSG_GETTABLE), family: family, dump: false,
                                       operation: what) { nlh in
                let t = NftBuild.table(ref)
                nftnl_table_nlmsg_build_payload(nlh, t)
                nftnl_table_free(t)
            }
        } catch let error as KernelError where error.errno == ENOENT {
            return nil
        }
        guard let tableReply = tableReplies.first, let parsed = NftParse.table(tableReply) else {
            throw KernelError.system(what, EPROTO)
        }
        var table = KernelTable(ref: ref, flags: parsed.flags, comment: parsed.comment)

        table.flowtables = try request(socket, type: NftConst.msg(NFT_MSG_GETFLOWTABLE), family: family, dump: true,
                                       operation: what + ": flowtables") { nlh in
            let f = NftBuild.flowtable(ref, name: "")
            nftnl_flowtable_unset(f, attr(NFTNL_FLOWTABLE_NAME))
            nftnl_flowtable_nlmsg_build_payload(nlh, f)
            nftnl_flowtable_free(f)
        }.compactMap(NftParse.flowtable).filter { $0.table == ref.name }.map(\.flowtable)

        let sets = try request(socket, type: NftConst.msg(NFT_MSG_GETSET), family: family, dump: true,
                               operation: what + ": sets") { nlh in
            let s = NftBuild.set(ref, name: "", ifnameKeys: false)
            nftnl_set_unset(s, attr(NFTNL_SET_NAME))
            nftnl_set_nlmsg_build_payload(nlh, s)
            nftnl_set_free(s)
        }.compactMap(NftParse.set).filter { $0.table == ref.name }
        for set in sets {
            let elements = try request(socket, type: NftConst.msg(NFT_MSG_GETSETELEM), family: family, dump: true,
                                       operation: what + ": elements of set \(set.name)") { nlh in
                let s = NftBuild.set(ref, name: set.name, ifnameKeys: false)
                nftnl_set_elems_nlmsg_build_payload(nlh, s)
                nftnl_set_free(s)
            }.flatMap(NftParse.elements)
            table.sets.append(KernelSet(name: set.name, keyType: set.keyType, keyLength: set.keyLength,
                                        elements: elements))
        }

        table.chains = try request(socket, type: NftConst.msg(NFT_MSG_GETCHAIN), family: family, dump: true,
                                   operation: what + ": chains") { _ in }
            .compactMap(NftParse.chain).filter { $0.table == ref.name && $0.family == ref.family }.map(\.chain)

        table.rules = try request(socket, type: NftConst.msg(NFT_MSG_GETRULE), family: family, dump: true,
                                  operation: what + ": rules") { nlh in
            let r = nftnl_rule_alloc()!
            nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), ref.name)
            nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(family))
            nftnl_rule_nlmsg_build_payload(nlh, r)
            nftnl_rule_free(r)
        }.compactMap(NftParse.rule).filter { $0.table == ref.name }.map(\.rule)
        return table
    }

    public func forwardChains() throws -> [ForwardChainInfo] {
        let what = "list forward chains"
        let socket = try NetfilterSocket(operation: what)
        return try request(socket, type: NftConst.msg(NFT_MSG_GETCHAIN), family: 0, dump: true,
                           operation: what) { _ in }
            .compactMap(NftParse.chain)
            .compactMap { entry -> ForwardChainInfo? in
                guard let family = entry.family, [.ip, .ip6, .inet].contains(family),
                      entry.chain.hook == .forward, let priority = entry.chain.priority
                else { return nil }
                return ForwardChainInfo(table: TableRef(family: family, name: entry.table),
                                        chain: entry.chain.name, priority: priority)
            }
            .sorted { ($0.priority, $0.table.description, $0.chain) < ($1.priority, $1.table.description, $1.chain) }
    }

    /// One GET request (a dump or a single object) built by `payload`.
    private func request(_ socket: NetfilterSocket, type: UInt16, family: UInt16, dump: Bool, operation: String,
                         payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws -> [NetlinkReply]
    {
        var buffer = [UInt8](repeating: 0, count: 8192)
        let seq = socket.allocateSeq()
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let nlh = nftnl_nlmsg_build_hdr(raw.baseAddress!.assumingMemoryBound(to: CChar.self), type, family,
                                            dump ? NftConst.NLM_F_DUMP : 0, seq)!
            payload(nlh)
            return Int(nlh.pointee.nlmsg_len)
        }
        return try buffer.withUnsafeBytes {
            try socket.request(UnsafeRawBufferPointer(rebasing: $0[0..<length]), seq: seq, dump: dump,
                               operation: operation)
        }
    }

    // MARK: Writing

    public func apply(_ batch: NftBatch, generation: UInt32?) throws {
        try send(batch, generation: generation, commit: true)
    }

    public func validate(_ batch: NftBatch) throws {
        try send(batch, generation: nil, commit: false)
    }

    /// Sends the batch; without `commit` the batch has no BATCH_END, so the
    /// kernel checks every message and then aborts it (as `nft --check`).
    private func send(_ batch: NftBatch, generation: UInt32?, commit: Bool) throws {
        guard !batch.isEmpty else { return }
        let commands = NftText.commands(batch)
        let operation = commit ? "apply nftables batch for table \(batch.table)" : "check nftables batch"
        let socket = try NetfilterSocket(operation: operation)
        let sizes = batch.changes.map(BatchBuffer.estimatedSize)
        let buffer = BatchBuffer(largestMessage: 2 * (sizes.max() ?? 0))
        // The whole batch is one datagram: make room beyond the default send buffer.
        socket.reserveSendBuffer(sizes.reduce(0, +) * 2 + 65536)
        let messages = batch.changes.map { NftBuild.messages(for: $0, in: batch.table) }
        let messageCount = messages.reduce(0) { $0 + $1.count }
        var seq = socket.allocateSeq(messageCount + 2)
        buffer.begin(seq: seq, generation: generation)
        for (index, stepMessages) in messages.enumerated() {
            for message in stepMessages {
                seq &+= 1
                buffer.add(message, seq: seq, change: index)
            }
        }
        if commit {
            seq &+= 1
            buffer.end(seq: seq)
        }
        socket.reserveReceiveBuffer(max(1 << 20, messageCount * 2048))
        var vectors = buffer.iovecs()
        try socket.send(iovecs: &vectors, operation: operation)

        // The kernel handles the batch while we send it, so every ack and
        // error is queued by now; wait a little for them anyway, then drain.
        let expected = Set(buffer.steps.map(\.seq))
        var answered = Set<UInt32>()
        var failures: [(seq: UInt32, errno: Int32, message: String?)] = []
        var waited = false
        while answered != expected {
            guard let replies = try socket.receive(timeoutMs: waited ? 0 : 5000, operation: operation) else {
                if waited { break }
                waited = true
                continue
            }
            for reply in replies where reply.type == NetlinkReply.NLMSG_ERROR {
                let code = reply.errorCode ?? EPROTO
                let answeredSeq = reply.erroredSeq ?? reply.seq
                answered.insert(answeredSeq)
                if code != 0 { failures.append((answeredSeq, code, reply.extendedAckMessage)) }
                // A refusal of the whole batch (stale generation, no permission)
                // answers BATCH_BEGIN and nothing else follows.
                if answeredSeq == buffer.beginSeq { answered = expected }
            }
        }
        if let failure = failures.min(by: { $0.seq < $1.seq }) {
            let step = buffer.steps.first { $0.seq == failure.seq }?.change
            let error = KernelError(operation: operation, errno: failure.errno,
                                    reason: String(cString: strerror(failure.errno)),
                                    hint: failure.message ?? Self.hint(for: failure.errno, change: step.map { batch.changes[$0] }))
            throw BatchError(change: step.map { batch.changes[$0] }, command: step.map { commands[$0] }, error: error)
        }
        if answered != expected {
            throw BatchError(change: nil, command: nil, error: KernelError.system(
                operation, ETIMEDOUT, hint: "the kernel acknowledged \(answered.count) of \(expected.count) messages"))
        }
    }

    static func hint(for code: Int32, change: NftChange?) -> String? {
        switch (code, change) {
        case (KernelError.ERESTART, _): "the ruleset changed since it was read"
        case (EPERM, _), (EACCES, _): "flowctl needs root or CAP_NET_ADMIN"
        // A driver without flowtable offload (TC_SETUP_FT) answers EOPNOTSUPP,
        // also for devices added to a flowtable with flags offload (netdevsim
        // and veth do, in the lab kernel); flowctl's updates carry no flags.
        case (EOPNOTSUPP, .addFlowtable(let spec)?) where spec.hardwareOffload:
            "a device cannot offload flows in hardware; --hw-offload auto or off uses software"
        case (EOPNOTSUPP, .addFlowtableDevices?):
            "a device cannot offload flows in hardware (the flowtable has flags offload); --hw-offload auto or off uses software"
        case (ENOENT, .addFlowtable?), (ENOENT, .addFlowtableDevices?):
            "a device is gone, or the kernel lacks flowtables (CONFIG_NF_FLOW_TABLE_INET)"
        case (ENOENT, .addRule?):
            "the kernel lacks the flow offload expression (CONFIG_NFT_FLOW_OFFLOAD)"
        case (EBUSY, _): "an object is still in use"
        default: nil
        }
    }

    /// libnftnl's text for each netlink message of a batch step (golden tests).
    public static func debugText(for change: NftChange, in table: TableRef) -> [String] {
        NftBuild.debugText(for: change, in: table)
    }
}
