import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

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
