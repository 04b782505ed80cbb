import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// FlowctlCore's nftables values -> libnftnl objects and netlink messages.
/// Everything here is internal: libnftnl pointers live only inside these
/// functions and are freed before they return.

/// A libnftnl object for one batch step, freed by `free()`.
enum NftnlObject {
    case table(OpaquePointer)
    case chain(OpaquePointer)
    case rule(OpaquePointer)
    case set(OpaquePointer)
    /// A set carrying elements (for NEWSETELEM / DELSETELEM).
    case elements(OpaquePointer)
    case flowtable(OpaquePointer)

    func free() {
        switch self {
        case .table(let p): nftnl_table_free(p)
        case .chain(let p): nftnl_chain_free(p)
        case .rule(let p): nftnl_rule_free(p)
        case .set(let p), .elements(let p): nftnl_set_free(p)
        case .flowtable(let p): nftnl_flowtable_free(p)
        }
    }

    /// libnftnl's debug text of the object (as `nft --debug=netlink` prints).
    func text() -> String {
        var buffer = [CChar](repeating: 0, count: 8192)
        let count = buffer.count
        _ = buffer.withUnsafeMutableBufferPointer { b -> Int32 in
            switch self {
            case .table(let p): nftnl_table_snprintf(b.baseAddress, count, p, 0, 0)
            case .chain(let p): nftnl_chain_snprintf(b.baseAddress, count, p, 0, 0)
            case .rule(let p): nftnl_rule_snprintf(b.baseAddress, count, p, 0, 0)
            case .set(let p): nftnl_set_snprintf(b.baseAddress, count, p, 0, 0)
            case .elements(let p): nftnl_set_snprintf(b.baseAddress, count, p, 0, 0)
            case .flowtable(let p): nftnl_flowtable_snprintf(b.baseAddress, count, p, 0, 0)
            }
        }
        return String(cString: buffer)
    }

    func buildPayload(_ nlh: UnsafeMutablePointer<nlmsghdr>) {
        switch self {
        case .table(let p): nftnl_table_nlmsg_build_payload(nlh, p)
        case .chain(let p): nftnl_chain_nlmsg_build_payload(nlh, p)
        case .rule(let p): nftnl_rule_nlmsg_build_payload(nlh, p)
        case .set(let p): nftnl_set_nlmsg_build_payload(nlh, p)
        case .elements(let p): nftnl_set_elems_nlmsg_build_payload(nlh, p)
        case .flowtable(let p): nftnl_flowtable_nlmsg_build_payload(nlh, p)
        }
    }
}

/// One netlink message of a batch step.
struct NftMessage {
    var type: UInt16
    var flags: UInt16
    var family: UInt16
    var object: NftnlObject
}

enum NftBuild {
    static func table(_ ref: TableRef, flags: TableFlags? = nil, comment: String? = nil) -> OpaquePointer {
        let t = nftnl_table_alloc()!
        nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), ref.name)
        nftnl_table_set_u32(t, attr(NFTNL_TABLE_FAMILY), UInt32(NftConst.family(ref.family)))
        if let flags { nftnl_table_set_u32(t, attr(NFTNL_TABLE_FLAGS), flags.rawValue) }
        if let comment, !comment.isEmpty {
            let data = UserData.encodeComment(comment)
            _ = data.withUnsafeBytes {
                nftnl_table_set_data(t, attr(NFTNL_TABLE_USERDATA), $0.baseAddress, UInt32($0.count))
            }
        }
        return t
    }

    static func flowtable(_ ref: TableRef, name: String, priority: Int32? = nil, devices: [String]? = nil,
                          flags: UInt32? = nil) -> OpaquePointer
    {
        let f = nftnl_flowtable_alloc()!
        nftnl_flowtable_set_str(f, attr(NFTNL_FLOWTABLE_TABLE), ref.name)
        nftnl_flowtable_set_u32(f, attr(NFTNL_FLOWTABLE_FAMILY), UInt32(NftConst.family(ref.family)))
        nftnl_flowtable_set_str(f, attr(NFTNL_FLOWTABLE_NAME), name)
        if let priority {
            nftnl_flowtable_set_u32(f, attr(NFTNL_FLOWTABLE_HOOKNUM), NftConst.NF_NETDEV_INGRESS)
            nftnl_flowtable_set_s32(f, attr(NFTNL_FLOWTABLE_PRIO), priority)
        }
        if let devices, !devices.isEmpty {
            _ = withCStringArray(devices) { nftnl_flowtable_set_array(f, attr(NFTNL_FLOWTABLE_DEVICES), $0) }
        }
        if let flags { nftnl_flowtable_set_u32(f, attr(NFTNL_FLOWTABLE_FLAGS), flags) }
        return f
    }

    static func set(_ ref: TableRef, name: String, ifnameKeys: Bool) -> OpaquePointer {
        let s = nftnl_set_alloc()!
        nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), ref.name)
        nftnl_set_set_u32(s, attr(NFTNL_SET_FAMILY), UInt32(NftConst.family(ref.family)))
        nftnl_set_set_str(s, attr(NFTNL_SET_NAME), name)
        if ifnameKeys {
            // NFTA_SET_ID is mandatory on NEWSET; it names the set within the batch.
            nftnl_set_set_u32(s, attr(NFTNL_SET_ID), 1)
            nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_TYPE), KernelSet.ifnameType)
            nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_LEN), KernelSet.ifnameLength)
            // nft(8) prints keys by the byte order in the set's user data:
            // NFTNL_UDATA_SET_KEYBYTEORDER = BYTEORDER_HOST_ENDIAN (1), as nft stores it.
            let byteOrder: [UInt8] = [0, 4] + withUnsafeBytes(of: UInt32(1)) { Array($0) }
            _ = byteOrder.withUnsafeBytes {
                nftnl_set_set_data(s, attr(NFTNL_SET_USERDATA), $0.baseAddress, UInt32($0.count))
            }
        }
        return s
    }

    static func elements(_ ref: TableRef, set name: String, names: [String]) -> OpaquePointer {
        let s = set(ref, name: name, ifnameKeys: false)
        for element in names {
            let e = nftnl_set_elem_alloc()!
            let key = ifnameKey(element)
            _ = key.withUnsafeBytes { nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count)) }
            nftnl_set_elem_add(s, e)
        }
        return s
    }

    static func chain(_ ref: TableRef, name: String, spec: ChainSpec? = nil) -> OpaquePointer {
        let c = nftnl_chain_alloc()!
        nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE), ref.name)
        nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_FAMILY), UInt32(NftConst.family(ref.family)))
        nftnl_chain_set_str(c, attr(NFTNL_CHAIN_NAME), name)
        if let spec {
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_HOOKNUM), NftConst.hookNumber(spec.hook, family: ref.family))
            nftnl_chain_set_s32(c, attr(NFTNL_CHAIN_PRIO), spec.priority)
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TYPE), "filter")
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_POLICY), NftConst.NF_ACCEPT)
        }
        return c
    }

    private static func expr(_ name: String, _ configure: (OpaquePointer) -> Void) -> OpaquePointer {
        let e = nftnl_expr_alloc(name)!
        configure(e)
        return e
    }

    /// `iifname @set ct direction original meta l4proto P counter flow add @ft comment "id"`, the
    /// same expressions nft(8) generates for that text.
    static func rule(_ ref: TableRef, _ rule: OffloadRule) -> OpaquePointer {
        let r = nftnl_rule_alloc()!
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), ref.name)
        nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(NftConst.family(ref.family)))
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), rule.chain)
        let metaKey = rule.direction == .input ? NftConst.NFT_META_IIFNAME : NftConst.NFT_META_OIFNAME
        nftnl_rule_add_expr(r, expr("meta") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_KEY), metaKey)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_DREG), NftConst.NFT_REG_1)
        })
        nftnl_rule_add_expr(r, expr("lookup") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_LOOKUP_SREG), NftConst.NFT_REG_1)
            nftnl_expr_set_str($0, attr(NFTNL_EXPR_LOOKUP_SET), rule.interfaceSet)
        })
        // Original direction only: a flow is offloaded when a packet of the
        // direction that opened it passed every other chain, so a rule that
        // drops that direction keeps the flow off the fast path even when its
        // replies are still accepted (see README, Coherence).
        nftnl_rule_add_expr(r, expr("ct") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_KEY), UInt32(NFT_CT_DIRECTION.rawValue))
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_DREG), NftConst.NFT_REG_1)
        })
        nftnl_rule_add_expr(r, expr("cmp") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_SREG), NftConst.NFT_REG_1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_OP), NftConst.NFT_CMP_EQ)
            var direction = UInt8(IP_CT_DIR_ORIGINAL.rawValue)
            nftnl_expr_set($0, attr(NFTNL_EXPR_CMP_DATA), &direction, 1)
        })
        nftnl_rule_add_expr(r, expr("meta") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_KEY), NftConst.NFT_META_L4PROTO)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_DREG), NftConst.NFT_REG_1)
        })
        nftnl_rule_add_expr(r, expr("cmp") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_SREG), NftConst.NFT_REG_1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_OP), NftConst.NFT_CMP_EQ)
            var proto = rule.l4proto.rawValue
            nftnl_expr_set($0, attr(NFTNL_EXPR_CMP_DATA), &proto, 1)
        })
        nftnl_rule_add_expr(r, expr("counter") { _ in })
        nftnl_rule_add_expr(r, expr("flow_offload") {
            nftnl_expr_set_str($0, attr(NFTNL_EXPR_FLOW_TABLE_NAME), rule.flowtable)
        })
        let data = UserData.encodeComment(rule.id)
        _ = data.withUnsafeBytes { nftnl_rule_set_data(r, attr(NFTNL_RULE_USERDATA), $0.baseAddress, UInt32($0.count)) }
        return r
    }

    /// A rule as the kernel (6.12) sends it in a dump: NEWRULE with a handle,
    /// counter values and the lookup's flags (0); for tests of NftParse.rule
    /// without a kernel.
    static func dumpedRule(_ ref: TableRef, _ offload: OffloadRule, handle: UInt64, packets: UInt64 = 0,
                           bytes: UInt64 = 0) -> NetlinkReply
    {
        let r = rule(ref, offload)
        defer { nftnl_rule_free(r) }
        nftnl_rule_set_u64(r, attr(NFTNL_RULE_HANDLE), handle)
        if let iterator = nftnl_expr_iter_create(r) {
            defer { nftnl_expr_iter_destroy(iterator) }
            while let e = nftnl_expr_iter_next(iterator) {
                switch cString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME))) {
                case "counter":
                    nftnl_expr_set_u64(e, attr(NFTNL_EXPR_CTR_PACKETS), packets)
                    nftnl_expr_set_u64(e, attr(NFTNL_EXPR_CTR_BYTES), bytes)
                case "lookup":
                    nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_FLAGS), 0)
                default:
                    break
                }
            }
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        return buffer.withUnsafeMutableBufferPointer { b -> NetlinkReply in
            let nlh = nftnl_nlmsg_build_hdr(b.baseAddress, NftConst.msg(NFT_MSG_NEWRULE), NftConst.family(ref.family),
                                            0, 1)!
            nftnl_rule_nlmsg_build_payload(nlh, r)
            let raw = UnsafeRawBufferPointer(start: b.baseAddress, count: Int(nlh.pointee.nlmsg_len))
            return NetlinkReply(type: nlh.pointee.nlmsg_type, flags: nlh.pointee.nlmsg_flags, seq: 1,
                                bytes: Array(raw))
        }
    }

    static func deleteRule(_ ref: TableRef, chain: String, handle: UInt64) -> OpaquePointer {
        let r = nftnl_rule_alloc()!
        nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), ref.name)
        nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(NftConst.family(ref.family)))
        nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u64(r, attr(NFTNL_RULE_HANDLE), handle)
        return r
    }

    static func flowtableFlags(counter: Bool, hardware: Bool) -> UInt32 {
        (counter ? NftConst.NFT_FLOWTABLE_COUNTER : 0) | (hardware ? NftConst.NFT_FLOWTABLE_HW_OFFLOAD : 0)
    }

    /// The netlink messages of one batch step (most steps are one message;
    /// a set with elements is two).
    static func messages(for change: NftChange, in ref: TableRef) -> [NftMessage] {
        let family = NftConst.family(ref.family)
        let ack = NftConst.NLM_F_ACK, create = NftConst.NLM_F_CREATE | NftConst.NLM_F_ACK
        func m(_ type: nf_tables_msg_types, _ flags: UInt16, _ object: NftnlObject) -> NftMessage {
            NftMessage(type: NftConst.msg(type), flags: flags, family: family, object: object)
        }
        switch change {
        case .addTable(let spec):
            return [m(NFT_MSG_NEWTABLE, create, .table(table(spec.ref, flags: spec.flags, comment: spec.comment)))]
        case .deleteTable(let target):
            return [m(NFT_MSG_DELTABLE, ack, .table(table(target)))]
        case .addFlowtable(let spec):
            // The kernel takes at most 255 devices per message (NFT_NETDEVICE_MAX,
            // EFBIG): the rest follow as updates in the same batch.
            let flags = flowtableFlags(counter: spec.counter, hardware: spec.hardwareOffload)
            let chunks = deviceChunks(spec.devices)
            return [m(NFT_MSG_NEWFLOWTABLE, create, .flowtable(flowtable(
                ref, name: spec.name, priority: spec.priority, devices: chunks.first ?? [], flags: flags)))]
                + chunks.dropFirst().map {
                    m(NFT_MSG_NEWFLOWTABLE, create, .flowtable(flowtable(ref, name: spec.name, priority: spec.priority, devices: $0)))
                }
        case .addFlowtableDevices(let name, let devices):
            // An update of an existing flowtable: hook number and priority
            // must repeat the flowtable's; the devices are added.
            return deviceChunks(devices).map {
                m(NFT_MSG_NEWFLOWTABLE, create, .flowtable(flowtable(
                    ref, name: name, priority: FlowctlNames.flowtablePriority, devices: $0)))
            }
        case .deleteFlowtableDevices(let name, let devices):
            return deviceChunks(devices).map {
                m(NFT_MSG_DELFLOWTABLE, ack, .flowtable(flowtable(
                    ref, name: name, priority: FlowctlNames.flowtablePriority, devices: $0)))
            }
        case .deleteFlowtable(let name):
            return [m(NFT_MSG_DELFLOWTABLE, ack, .flowtable(flowtable(ref, name: name)))]
        case .addSet(let spec):
            var result = [m(NFT_MSG_NEWSET, create, .set(set(ref, name: spec.name, ifnameKeys: true)))]
            if !spec.elements.isEmpty {
                result.append(m(NFT_MSG_NEWSETELEM, create, .elements(elements(ref, set: spec.name, names: spec.elements))))
            }
            return result
        case .addSetElements(let name, let names):
            return [m(NFT_MSG_NEWSETELEM, create, .elements(elements(ref, set: name, names: names)))]
        case .deleteSetElements(let name, let names):
            return [m(NFT_MSG_DELSETELEM, ack, .elements(elements(ref, set: name, names: names)))]
        case .deleteSet(let name):
            return [m(NFT_MSG_DELSET, ack, .set(set(ref, name: name, ifnameKeys: false)))]
        case .addChain(let spec):
            return [m(NFT_MSG_NEWCHAIN, create, .chain(chain(ref, name: spec.name, spec: spec)))]
        case .deleteChain(let name):
            return [m(NFT_MSG_DELCHAIN, ack, .chain(chain(ref, name: name)))]
        case .addRule(let offload):
            return [m(NFT_MSG_NEWRULE, create | NftConst.NLM_F_APPEND, .rule(rule(ref, offload)))]
        case .deleteRule(let chainName, let handle):
            return [m(NFT_MSG_DELRULE, ack, .rule(deleteRule(ref, chain: chainName, handle: handle)))]
        }
    }

    /// Devices per flowtable message: below the kernel's NFT_NETDEVICE_MAX (256).
    static let devicesPerMessage = 200

    static func deviceChunks(_ devices: [String]) -> [[String]] {
        stride(from: 0, to: devices.count, by: devicesPerMessage).map {
            Array(devices[$0..<min($0 + devicesPerMessage, devices.count)])
        }
    }

    /// libnftnl's text for a batch step, for golden tests and `--debug`.
    static func debugText(for change: NftChange, in ref: TableRef) -> [String] {
        messages(for: change, in: ref).map { message in
            defer { message.object.free() }
            return message.object.text()
        }
    }
}
