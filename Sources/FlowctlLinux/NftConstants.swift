import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// Kernel numbers for nftables messages (linux/netfilter.h, nfnetlink.h,
/// nf_tables.h), FlowctlCore's values mapped to them and back.
enum NftConst {
    // NFPROTO_* (linux/netfilter.h)
    static func family(_ family: NftFamily) -> UInt16 {
        let value = switch family {
        case .inet: NFPROTO_INET
        case .ip: NFPROTO_IPV4
        case .arp: NFPROTO_ARP
        case .netdev: NFPROTO_NETDEV
        case .bridge: NFPROTO_BRIDGE
        case .ip6: NFPROTO_IPV6
        }
        return UInt16(value)
    }

    static func family(raw: UInt32) -> NftFamily? {
        NftFamily.allCases.first { UInt32(family($0)) == raw }
    }

    // NF_INET_* hook numbers (ip, ip6, inet), NF_NETDEV_* (netdev).
    static func hookNumber(_ hook: ChainHook, family: NftFamily) -> UInt32 {
        if family == .netdev { return hook == .egress ? UInt32(NF_NETDEV_EGRESS.rawValue) : UInt32(CLibMnl.NF_NETDEV_INGRESS.rawValue) }
        let value: nf_inet_hooks
        switch hook {
        case .prerouting: value = NF_INET_PRE_ROUTING
        case .input: value = NF_INET_LOCAL_IN
        case .forward: value = NF_INET_FORWARD
        case .output: value = NF_INET_LOCAL_OUT
        case .postrouting: value = NF_INET_POST_ROUTING
        case .ingress: value = NF_INET_INGRESS
        case .egress: return UInt32.max  // no egress hook outside netdev: a number the kernel refuses
        }
        return UInt32(value.rawValue)
    }

    static func hook(number: UInt32, family: NftFamily) -> ChainHook? {
        let hooks: [ChainHook] = family == .netdev ? [.ingress, .egress]
            : [.prerouting, .input, .forward, .output, .postrouting, .ingress]
        return hooks.first { hookNumber($0, family: family) == number }
    }

    static let NFNL_SUBSYS_NFTABLES = UInt16(CLibMnl.NFNL_SUBSYS_NFTABLES)
    static let NFNL_MSG_BATCH_BEGIN = UInt16(CLibMnl.NFNL_MSG_BATCH_BEGIN)
    static let NFNL_MSG_BATCH_END = UInt16(CLibMnl.NFNL_MSG_BATCH_END)
    static let NFNL_BATCH_GENID = UInt16(CLibMnl.NFNL_BATCH_GENID.rawValue)

    static let NLM_F_REQUEST = UInt16(CLibMnl.NLM_F_REQUEST)
    static let NLM_F_ACK = UInt16(CLibMnl.NLM_F_ACK)
    static let NLM_F_EXCL = UInt16(CLibMnl.NLM_F_EXCL)
    static let NLM_F_DUMP = UInt16(CLibMnl.NLM_F_DUMP)
    static let NLM_F_CREATE = UInt16(CLibMnl.NLM_F_CREATE)
    static let NLM_F_APPEND = UInt16(CLibMnl.NLM_F_APPEND)

    static let NF_ACCEPT = UInt32(CLibMnl.NF_ACCEPT)
    static let NF_NETDEV_INGRESS = UInt32(CLibMnl.NF_NETDEV_INGRESS.rawValue)
    static let NFT_REG_1 = UInt32(CLibMnl.NFT_REG_1.rawValue)
    static let NFT_META_IIFNAME = UInt32(CLibMnl.NFT_META_IIFNAME.rawValue)
    static let NFT_META_OIFNAME = UInt32(CLibMnl.NFT_META_OIFNAME.rawValue)
    static let NFT_META_L4PROTO = UInt32(CLibMnl.NFT_META_L4PROTO.rawValue)
    static let NFT_CMP_EQ = UInt32(CLibMnl.NFT_CMP_EQ.rawValue)
    static let NFT_FLOWTABLE_HW_OFFLOAD = UInt32(CLibMnl.NFT_FLOWTABLE_HW_OFFLOAD.rawValue)
    static let NFT_FLOWTABLE_COUNTER = UInt32(CLibMnl.NFT_FLOWTABLE_COUNTER.rawValue)
    static let IFNAMSIZ = Int(Glibc.IFNAMSIZ)

    static func msg(_ type: nf_tables_msg_types) -> UInt16 { UInt16(type.rawValue) }
}

// libnftnl attribute enums are imported as distinct types; one spelling.
@inline(__always) func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue: BinaryInteger {
    UInt16(value.rawValue)
}
@inline(__always) func attr(_ value: Int) -> UInt16 { UInt16(value) }
