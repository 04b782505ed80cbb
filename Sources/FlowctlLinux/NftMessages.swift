import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// FlowctlCore's nftables values <-> libnftnl objects and netlink messages.
/// Everything here is internal: libnftnl pointers live only inside these
/// functions and are freed before they return.

enum NftConst {
    // NFPROTO_* (linux/netfilter.h)
    static func family(_ family: NftFamily) -> UInt16 {
        switch family {
        case .inet: 1
        case .ip: 2
        case .arp: 3
        case .netdev: 5
        case .bridge: 7
        case .ip6: 10
        }
    }

    static func family(raw: UInt32) -> NftFamily? {
        switch raw {
        case 1: .inet
        case 2: .ip
        case 3: .arp
        case 5: .netdev
        case 7: .bridge
        case 10: .ip6
        default: nil
        }
    }

    // NF_INET_* hook numbers for the ip, ip6 and inet families.
    static func hookNumber(_ hook: ChainHook) -> UInt32 {
        switch hook {
        case .prerouting: 0
        case .input: 1
        case .forward: 2
        case .output: 3
        case .postrouting: 4
        case .ingress: 5
        case .egress: 6
        }
    }

    static func hook(number: UInt32, family: NftFamily) -> ChainHook? {
        if family == .netdev { return number == 0 ? .ingress : number == 1 ? .egress : nil }
        switch number {
        case 0: return .prerouting
        case 1: return .input
        case 2: return .forward
        case 3: return .output
        case 4: return .postrouting
        case 5: return .ingress
        default: return nil
        }
    }

    static let NFNL_SUBSYS_NFTABLES: UInt16 = 10
    static let NFNL_MSG_BATCH_BEGIN: UInt16 = 0x10
    static let NFNL_MSG_BATCH_END: UInt16 = 0x11
    static let NFNL_BATCH_GENID: UInt16 = 1

    static let NLM_F_REQUEST: UInt16 = 0x1
    static let NLM_F_ACK: UInt16 = 0x4
    static let NLM_F_EXCL: UInt16 = 0x200
    static let NLM_F_DUMP: UInt16 = 0x300
    static let NLM_F_CREATE: UInt16 = 0x400
    static let NLM_F_APPEND: UInt16 = 0x800

    static let NF_ACCEPT: UInt32 = 1
    static let NF_NETDEV_INGRESS: UInt32 = 0
    static let NFT_REG_1: UInt32 = 1
    static let NFT_META_IIFNAME: UInt32 = 6
    static let NFT_META_OIFNAME: UInt32 = 7
    static let NFT_META_L4PROTO: UInt32 = 16
    static let NFT_CMP_EQ: UInt32 = 0
    static let NFT_FLOWTABLE_HW_OFFLOAD: UInt32 = 0x1
    static let NFT_FLOWTABLE_COUNTER: UInt32 = 0x2
    static let IFNAMSIZ = 16

    static func msg(_ type: nf_tables_msg_types) -> UInt16 { UInt16(type.rawValue) }
}

// libnftnl attribute enums are imported as distinct types; one spelling.
@inline(__always) func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue: BinaryInteger {
    UInt16(value.rawValue)
}
@inline(__always) func attr(_ value: Int) -> UInt16 { UInt16(value) }

/// Table, rule and chain comments: nftnl_udata TLVs (u8 type, u8 length,
/// value), the comment under type 0 as a NUL-terminated string.
enum UserData {
    static let commentType: UInt8 = 0

    static func encodeComment(_ comment: String) -> [UInt8] {
        var value = Array(comment.utf8.prefix(127))
        value.append(0)
        return [commentType, UInt8(value.count)] + value
    }

    static func decodeComment(_ bytes: [UInt8]) -> String? {
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset], length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { return nil }
            if type == commentType {
                let value = bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }
                return String(decoding: value, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }
}

/// An interface name as an nft `ifname` key: IFNAMSIZ bytes, NUL padded.
func ifnameKey(_ name: String) -> [UInt8] {
    var key = Array(name.utf8.prefix(NftConst.IFNAMSIZ - 1))
    key += [UInt8](repeating: 0, count: NftConst.IFNAMSIZ - key.count)
    return key
}

func ifname(fromKey bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

/// Calls body with a NULL-terminated C array of the strings.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}

func cString(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }

// MARK: - Building objects

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
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_HOOKNUM), NftConst.hookNumber(spec.hook))
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

// MARK: - A batch

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

// MARK: - Parsing dumps

enum NftParse {
    static func withHeader<R>(_ reply: NetlinkReply, _ body: (UnsafePointer<nlmsghdr>) -> R) -> R {
        reply.bytes.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) }
    }

    static func data(_ get: (UnsafeMutablePointer<UInt32>) -> UnsafeRawPointer?) -> [UInt8]? {
        var length: UInt32 = 0
        guard let pointer = get(&length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length)))
    }

    static func table(_ reply: NetlinkReply) -> (name: String, flags: TableFlags, comment: String?)? {
        let t = nftnl_table_alloc()!
        defer { nftnl_table_free(t) }
        guard withHeader(reply, { nftnl_table_nlmsg_parse($0, t) }) >= 0 else { return nil }
        let name = cString(nftnl_table_get_str(t, attr(NFTNL_TABLE_NAME))) ?? ""
        let flags = TableFlags(rawValue: nftnl_table_get_u32(t, attr(NFTNL_TABLE_FLAGS)))
        let comment = nftnl_table_is_set(t, attr(NFTNL_TABLE_USERDATA))
            ? data({ nftnl_table_get_data(t, attr(NFTNL_TABLE_USERDATA), $0) }).flatMap(UserData.decodeComment)
            : nil
        return (name, flags, comment)
    }

    static func flowtable(_ reply: NetlinkReply) -> (table: String, flowtable: KernelFlowtable)? {
        let f = nftnl_flowtable_alloc()!
        defer { nftnl_flowtable_free(f) }
        guard withHeader(reply, { nftnl_flowtable_nlmsg_parse($0, f) }) >= 0 else { return nil }
        var devices: [String] = []
        if nftnl_flowtable_is_set(f, attr(NFTNL_FLOWTABLE_DEVICES)),
           let array = nftnl_flowtable_get_array(f, attr(NFTNL_FLOWTABLE_DEVICES))
        {
            var index = 0
            while let device = array[index] {
                devices.append(String(cString: device))
                index += 1
            }
        }
        let flags = nftnl_flowtable_get_u32(f, attr(NFTNL_FLOWTABLE_FLAGS))
        return (cString(nftnl_flowtable_get_str(f, attr(NFTNL_FLOWTABLE_TABLE))) ?? "",
                KernelFlowtable(name: cString(nftnl_flowtable_get_str(f, attr(NFTNL_FLOWTABLE_NAME))) ?? "",
                                priority: nftnl_flowtable_get_s32(f, attr(NFTNL_FLOWTABLE_PRIO)),
                                devices: devices,
                                counter: flags & NftConst.NFT_FLOWTABLE_COUNTER != 0,
                                hardwareOffload: flags & NftConst.NFT_FLOWTABLE_HW_OFFLOAD != 0))
    }

    static func set(_ reply: NetlinkReply) -> (table: String, name: String, keyType: UInt32, keyLength: UInt32)? {
        let s = nftnl_set_alloc()!
        defer { nftnl_set_free(s) }
        guard withHeader(reply, { nftnl_set_nlmsg_parse($0, s) }) >= 0 else { return nil }
        return (cString(nftnl_set_get_str(s, attr(NFTNL_SET_TABLE))) ?? "",
                cString(nftnl_set_get_str(s, attr(NFTNL_SET_NAME))) ?? "",
                nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_TYPE)),
                nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_LEN)))
    }

    /// Element keys of one NEWSETELEM dump message, as interface names.
    static func elements(_ reply: NetlinkReply) -> [String] {
        let s = nftnl_set_alloc()!
        defer { nftnl_set_free(s) }
        guard withHeader(reply, { nftnl_set_elems_nlmsg_parse($0, s) }) >= 0 else { return [] }
        guard let iterator = nftnl_set_elems_iter_create(s) else { return [] }
        defer { nftnl_set_elems_iter_destroy(iterator) }
        var names: [String] = []
        while let element = nftnl_set_elems_iter_next(iterator) {
            if let key = data({ nftnl_set_elem_get(element, attr(NFTNL_SET_ELEM_KEY), $0) }) {
                names.append(ifname(fromKey: key))
            }
        }
        return names
    }

    static func chain(_ reply: NetlinkReply) -> (family: NftFamily?, table: String, chain: KernelChain)? {
        let c = nftnl_chain_alloc()!
        defer { nftnl_chain_free(c) }
        guard withHeader(reply, { nftnl_chain_nlmsg_parse($0, c) }) >= 0 else { return nil }
        let family = NftConst.family(raw: nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_FAMILY)))
        let isBase = nftnl_chain_is_set(c, attr(NFTNL_CHAIN_HOOKNUM))
        let hook = isBase ? NftConst.hook(number: nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_HOOKNUM)),
                                          family: family ?? .inet) : nil
        let policyAccept = !nftnl_chain_is_set(c, attr(NFTNL_CHAIN_POLICY))
            || nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_POLICY)) == NftConst.NF_ACCEPT
        return (family, cString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TABLE))) ?? "",
                KernelChain(name: cString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_NAME))) ?? "",
                            type: isBase ? cString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TYPE))) : nil,
                            hook: hook,
                            priority: isBase ? nftnl_chain_get_s32(c, attr(NFTNL_CHAIN_PRIO)) : nil,
                            policyAccept: policyAccept))
    }

    static func rule(_ reply: NetlinkReply) -> (table: String, rule: KernelRule)? {
        let r = nftnl_rule_alloc()!
        defer { nftnl_rule_free(r) }
        guard withHeader(reply, { nftnl_rule_nlmsg_parse($0, r) }) >= 0 else { return nil }
        let comment = nftnl_rule_is_set(r, attr(NFTNL_RULE_USERDATA))
            ? data({ nftnl_rule_get_data(r, attr(NFTNL_RULE_USERDATA), $0) }).flatMap(UserData.decodeComment)
            : nil
        var packets: UInt64?, bytes: UInt64?
        var expressions: [String] = []
        if let iterator = nftnl_expr_iter_create(r) {
            defer { nftnl_expr_iter_destroy(iterator) }
            while let e = nftnl_expr_iter_next(iterator) {
                if cString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME))) == "counter" {
                    packets = nftnl_expr_get_u64(e, attr(NFTNL_EXPR_CTR_PACKETS))
                    bytes = nftnl_expr_get_u64(e, attr(NFTNL_EXPR_CTR_BYTES))
                }
                expressions.append(expressionText(e))
            }
        }
        return (cString(nftnl_rule_get_str(r, attr(NFTNL_RULE_TABLE))) ?? "",
                KernelRule(chain: cString(nftnl_rule_get_str(r, attr(NFTNL_RULE_CHAIN))) ?? "",
                           handle: nftnl_rule_get_u64(r, attr(NFTNL_RULE_HANDLE)),
                           comment: comment, expressions: expressions, packets: packets, bytes: bytes))
    }

    /// One expression in the text of OffloadRule.expressions: its name and
    /// libnftnl's printout of it (what nftnl_rule_snprintf puts between
    /// brackets), the counter without its values.
    static func expressionText(_ e: OpaquePointer) -> String {
        let name = cString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME))) ?? "?"
        if name == "counter" { return name }
        var buffer = [CChar](repeating: 0, count: 512)
        let length = Int(nftnl_expr_snprintf(&buffer, buffer.count, e, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0))
        if length >= buffer.count {  // truncated: long data (a big cmp operand, say)
            buffer = [CChar](repeating: 0, count: length + 1)
            _ = nftnl_expr_snprintf(&buffer, buffer.count, e, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
        }
        var text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)[...]
        while text.last == " " { text = text.dropLast() }  // libnftnl ends each field with a space
        // The kernel reports a lookup's flags even when they are 0 (flowctl
        // sends none) and libnftnl then prints them last ("... set s 0x0"):
        // the default is left out, so both read the same.
        if name == "lookup", nftnl_expr_is_set(e, attr(NFTNL_EXPR_LOOKUP_FLAGS)),
           nftnl_expr_get_u32(e, attr(NFTNL_EXPR_LOOKUP_FLAGS)) == 0, text.hasSuffix(" 0x0")
        {
            text = text.dropLast(4)
        }
        return text.isEmpty ? name : name + " " + text
    }

    static func generation(_ reply: NetlinkReply) -> UInt32? {
        let g = nftnl_gen_alloc()!
        defer { nftnl_gen_free(g) }
        guard withHeader(reply, { nftnl_gen_nlmsg_parse($0, g) }) >= 0 else { return nil }
        return nftnl_gen_get_u32(g, attr(NFTNL_GEN_ID))
    }
}
