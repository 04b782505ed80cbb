import CLibNLRoute
import FlowctlCore
import Glibc

/// rtnetlink notifications through libnl-route-3: link changes become
/// TopologyEvent values at once; route, neighbour, bridge FDB, bridge port
/// and bridge VLAN messages become the events the coherence watch needs.
/// Subscribe first, then dump (the daemon does), so nothing is missed.
public final class RtnetlinkMonitor: TopologyEventSource {
    private let socket: OpaquePointer
    private let decoder = RtnetlinkDecoder()

    public init() throws {
        socket = try RtnetlinkDecoder.openSocket(decoder, operation: "subscribe to rtnetlink")
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEIGH] {
            let joined = nl_socket_add_membership(socket, Int32(group.rawValue))
            guard joined == 0 else {
                nl_socket_free(socket)
                throw KernelError(operation: "join rtnetlink group \(group.rawValue)", errno: EPROTO,
                                  reason: String(cString: nl_geterror(joined)))
            }
        }
        // Bridge VLAN notifications (Linux 5.10+): older kernels announce
        // VLAN changes through AF_BRIDGE RTM_NEWLINK only, which is joined above.
        _ = nl_socket_add_membership(socket, Int32(RTNLGRP_BRVLAN.rawValue))
        // Nexthop objects (Linux 5.3+; none exist before).
        _ = nl_socket_add_membership(socket, Int32(RTNLGRP_NEXTHOP.rawValue))
        _ = nl_socket_set_nonblocking(socket)
        // Room for a burst of thousands of notifications (libnl's own setter
        // is capped by net.core.rmem_max); ENOBUFS is still handled.
        reserveNetlinkReceiveBuffer(nl_socket_get_fd(socket), 8 << 20)
    }

    deinit { nl_socket_free(socket) }

    public var pollDescriptor: Int32 { nl_socket_get_fd(socket) }

    public func drain() throws -> [TopologyEvent] {
        while true {
            let received = nl_recvmsgs_default(socket)
            if received >= 0 { continue }
            if -received == NLE_AGAIN { break }
            // ENOBUFS (libnl: NLE_NOMEM) or any decoding failure: events were lost.
            decoder.pending.append(.lost(reason: String(cString: nl_geterror(received))))
            break
        }
        return decoder.take()
    }

    public func baseline() throws -> [TopologyEvent] { try Self.neighbourDump() }

    /// The bridge FDB and the IPv4/IPv6 neighbours as events, from dumps:
    /// the coherence watch's starting point.
    static func neighbourDump() throws -> [TopologyEvent] {
        let decoder = RtnetlinkDecoder()
        let operation = "dump neighbours and bridge FDB"
        let socket = try RtnetlinkDecoder.openSocket(decoder, operation: operation)
        defer { nl_socket_free(socket) }
        for family in [AF_BRIDGE, AF_UNSPEC] {
            let sent = nl_rtgen_request(socket, Int32(RTM_GETNEIGH), family, NLM_F_DUMP)
            guard sent >= 0 else {
                throw KernelError(operation: operation, errno: EPROTO, reason: String(cString: nl_geterror(sent)))
            }
            let received = nl_recvmsgs_default(socket)
            guard received >= 0 else {
                throw KernelError(operation: operation, errno: EPROTO, reason: String(cString: nl_geterror(received)))
            }
        }
        return decoder.take().filter {
            if case .lost = $0 { return false }
            return true
        }
    }
}

/// Turns rtnetlink messages into TopologyEvent values (monitor and dumps).
final class RtnetlinkDecoder {
    var pending: [TopologyEvent] = []

    func take() -> [TopologyEvent] {
        defer { pending.removeAll() }
        return pending
    }

    static func openSocket(_ decoder: RtnetlinkDecoder, operation: String) throws -> OpaquePointer {
        guard let socket = nl_socket_alloc() else {
            throw KernelError(operation: operation, errno: ENOMEM, reason: "out of memory")
        }
        nl_socket_disable_seq_check(socket)
        let context = Unmanaged.passUnretained(decoder).toOpaque()
        nl_socket_modify_cb(socket, NL_CB_VALID, NL_CB_CUSTOM, rtnetlinkMonitorCallback, context)
        let connected = nl_connect(socket, NETLINK_ROUTE)
        guard connected == 0 else {
            nl_socket_free(socket)
            throw KernelError(operation: operation, errno: EPROTO, reason: String(cString: nl_geterror(connected)))
        }
        return socket
    }

    func handle(_ message: OpaquePointer) {
        guard let header = nlmsg_hdr(message) else { return }
        let type = Int32(header.pointee.nlmsg_type)
        switch type {
        case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
            let removed = type == Int32(RTM_DELLINK)
            // AF_BRIDGE link messages describe a port's bridge attributes, not the device.
            if Self.family(header) == UInt8(AF_BRIDGE) {
                if !removed, let event = BridgeMessage.port(Self.bytes(header)) { pending.append(event) }
                return
            }
            var box = ParsedLink()
            withUnsafeMutablePointer(to: &box) { pointer in
                _ = nl_msg_parse(message, rtnetlinkMonitorParse, UnsafeMutableRawPointer(pointer))
            }
            guard let link = box.link else {
                pending.append(.lost(reason: "undecodable link message"))
                return
            }
            pending.append(removed ? .linkRemoved(index: link.index, name: link.name) : .link(link))
        case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE):
            var box = ParsedRoute()
            withUnsafeMutablePointer(to: &box) { pointer in
                _ = nl_msg_parse(message, rtnetlinkMonitorParseRoute, UnsafeMutableRawPointer(pointer))
            }
            guard var change = box.change else {
                pending.append(.lost(reason: "undecodable route message"))
                return
            }
            change.removed = type == Int32(RTM_DELROUTE)
            let flags = Int32(header.pointee.nlmsg_flags)
            change.replaces = flags & NLM_F_REPLACE != 0
            change.appends = flags & NLM_F_APPEND != 0
            // A device coming up brings IPv6 link-local and multicast routes:
            // those are dropped here, so they cost neither a resync nor a re-evaluation.
            if change.matters { pending.append(.route(change)) }
        case Int32(RTM_NEWNEIGH), Int32(RTM_DELNEIGH):
            var box = ParsedNeighbour(removed: type == Int32(RTM_DELNEIGH))
            withUnsafeMutablePointer(to: &box) { pointer in
                _ = nl_msg_parse(message, rtnetlinkMonitorParseNeighbour, UnsafeMutableRawPointer(pointer))
            }
            if let event = box.event { pending.append(event) }
        case Int32(RTM_DELNEXTHOP):
            // A new nexthop object carries no route yet; a replaced one is
            // re-announced through its routes (nexthop_compat_mode 1, the
            // default); a deleted one takes its routes silently.
            guard let id = NetlinkAttributes(message: Self.bytes(header), familyHeaderLength: MemoryLayout<nhmsg>.size)
                .first(ofType: UInt16(NHA_ID))?.u32 else {
                pending.append(.lost(reason: "undecodable nexthop message"))
                return
            }
            pending.append(.nexthopRemoved(id: id))
        case Int32(RTM_NEWVLAN), Int32(RTM_DELVLAN):
            if let event = BridgeMessage.vlan(header) { pending.append(event) }
        default:
            break
        }
    }

    /// The events of one whole rtnetlink message (header included), as the
    /// monitor would decode it; its length field is taken as the buffer's,
    /// as libnl's receive path guarantees. For tests and the fuzzers.
    static func decode(message bytes: [UInt8]) -> [TopologyEvent] {
        guard bytes.count >= MemoryLayout<nlmsghdr>.size else { return [] }
        var copy = bytes
        return copy.withUnsafeMutableBytes { raw -> [TopologyEvent] in
            let header = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
            header.pointee.nlmsg_len = UInt32(raw.count)
            guard let message = nlmsg_convert(header) else { return [] }
            defer { nlmsg_free(message) }
            let decoder = RtnetlinkDecoder()
            decoder.handle(message)
            return decoder.take()
        }
    }

    /// A whole message, header included (libnl hands over only messages
    /// whose nlmsg_len fits what was received).
    static func bytes(_ header: UnsafeMutablePointer<nlmsghdr>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
    }

    static func family(_ header: UnsafeMutablePointer<nlmsghdr>) -> UInt8? {
        guard header.pointee.nlmsg_len >= UInt32(MemoryLayout<nlmsghdr>.size + 1) else { return nil }
        return nlmsg_data(header).load(as: UInt8.self)
    }
}

/// AF_BRIDGE messages libnl 3.7 does not model: attributes read with
/// NetlinkAttributes.
enum BridgeMessage {
    /// AF_BRIDGE RTM_NEWLINK (the whole message) -> the port's VLANs
    /// (IFLA_AF_SPEC) and STP state (IFLA_PROTINFO).
    static func port(_ message: [UInt8]) -> TopologyEvent? {
        let headerLength = MemoryLayout<ifinfomsg>.size
        let headerOffset = NetlinkAttributes.messageHeaderLength
        guard message.count >= headerOffset + NetlinkAttributes.align(headerLength) else { return nil }
        let info = message.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: headerOffset, as: ifinfomsg.self) }
        let attributes = NetlinkAttributes(message: message, familyHeaderLength: headerLength)
        let vlans = attributes.first(ofType: UInt16(IFLA_AF_SPEC)).map { decodeVLANs($0.nested) }
        let state = attributes.first(ofType: UInt16(IFLA_PROTINFO))?.nested.first(ofType: UInt16(IFLA_BRPORT_STATE))?.u8
        return .bridgePort(index: info.ifi_index, BridgePortInfo(vlans: vlans, state: state))
    }

    /// IFLA_BRIDGE_VLAN_INFO entries of IFLA_AF_SPEC, ranges expanded.
    static func decodeVLANs(_ spec: NetlinkAttributes) -> BridgeVLANs {
        var vids: [UInt16] = [], untagged: [UInt16] = [], pvid: UInt16?
        var rangeStart: UInt16?
        for attribute in spec where attribute.type == UInt16(IFLA_BRIDGE_VLAN_INFO)
            && attribute.payload.count >= MemoryLayout<bridge_vlan_info>.size
        {
            let entry = attribute.payload.withUnsafeBytes { $0.loadUnaligned(as: bridge_vlan_info.self) }
            let flags = Int32(entry.flags)
            if flags & BRIDGE_VLAN_INFO_RANGE_BEGIN != 0 {
                rangeStart = entry.vid
            } else {
                let first = flags & BRIDGE_VLAN_INFO_RANGE_END != 0 ? (rangeStart ?? entry.vid) : entry.vid
                rangeStart = nil
                for vid in first...max(first, entry.vid) {
                    vids.append(vid)
                    if flags & BRIDGE_VLAN_INFO_UNTAGGED != 0 { untagged.append(vid) }
                    if flags & BRIDGE_VLAN_INFO_PVID != 0 { pvid = vid }
                }
            }
        }
        return BridgeVLANs(vids: vids, pvid: pvid, untagged: untagged)
    }

    /// RTM_NEWVLAN / RTM_DELVLAN: struct br_vlan_msg names the port or bridge.
    static func vlan(_ header: UnsafeMutablePointer<nlmsghdr>) -> TopologyEvent? {
        guard nlmsg_valid_hdr(header, Int32(MemoryLayout<br_vlan_msg>.size)) != 0 else { return nil }
        let message = nlmsg_data(header).load(as: br_vlan_msg.self)
        return .bridgeVLANChanged(index: Int32(bitPattern: message.ifindex))
    }
}

private struct ParsedRoute {
    var change: RouteChange?
}

private func rtnetlinkMonitorParseRoute(_ object: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    guard let object, let context else { return }
    let box = context.assumingMemoryBound(to: ParsedRoute.self)
    let family = rtnl_route_get_family(object)
    let dst = rtnl_route_get_dst(object)
    let prefix = dst.map { UInt8(nl_addr_get_prefixlen($0)) } ?? 0
    var destination = family == UInt8(AF_INET6) ? "::" : "0.0.0.0"
    if let dst, prefix > 0, let text = NeighbourText.address(dst) { destination = text }
    box.pointee.change = RouteChange(
        family: family == UInt8(AF_INET6) ? .ipv6 : .ipv4, destination: destination, prefixLength: prefix,
        table: rtnl_route_get_table(object), removed: false,
        // Any type of default route counts (one turning unreachable matters too).
        isUnicast: rtnl_route_get_type(object) == UInt8(RTN_UNICAST) || prefix == 0,
        metric: rtnl_route_get_priority(object), tos: rtnl_route_get_tos(object),
        route: RouteDecoder.route(from: object))
}

private struct ParsedNeighbour {
    var removed: Bool
    var event: TopologyEvent?
}

private func rtnetlinkMonitorParseNeighbour(_ object: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    guard let object, let context else { return }
    let box = context.assumingMemoryBound(to: ParsedNeighbour.self)
    let index = Int32(rtnl_neigh_get_ifindex(object))
    let state = rtnl_neigh_get_state(object)
    let lladdr = rtnl_neigh_get_lladdr(object).flatMap(NeighbourText.address)
    switch Int32(rtnl_neigh_get_family(object)) {
    case AF_BRIDGE:
        // Learned entries only: a port's own address (permanent) never moves.
        guard let lladdr, state & Int32(NUD_PERMANENT) == 0 else { return }
        let vlan = rtnl_neigh_get_vlan(object)
        box.pointee.event = .fdb(mac: vlan > 0 ? "\(lladdr) vlan \(vlan)" : lladdr, port: index,
                                 removed: box.pointee.removed)
    case AF_INET, AF_INET6:
        guard let address = rtnl_neigh_get_dst(object).flatMap(NeighbourText.address) else { return }
        let usable = state & Int32(NUD_FAILED | NUD_INCOMPLETE) == 0
        box.pointee.event = .neighbour(index: index, address: address, lladdr: usable ? lladdr : nil,
                                       removed: box.pointee.removed)
    default:
        break
    }
}

enum NeighbourText {
    /// An address as text, without a prefix length.
    static func address(_ address: OpaquePointer) -> String? {
        var buffer = [CChar](repeating: 0, count: 128)
        guard nl_addr2str(address, &buffer, buffer.count) != nil else { return nil }
        let text = String(cString: buffer)
        return text.split(separator: "/").first.map(String.init)
    }
}

private struct ParsedLink {
    var link: Link?
}

private func rtnetlinkMonitorCallback(_ message: OpaquePointer?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let message, let context else { return Int32(NL_SKIP.rawValue) }
    Unmanaged<RtnetlinkDecoder>.fromOpaque(context).takeUnretainedValue().handle(message)
    return Int32(NL_OK.rawValue)
}

private func rtnetlinkMonitorParse(_ object: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    guard let object, let context else { return }
    let box = context.assumingMemoryBound(to: ParsedLink.self)
    box.pointee.link = LinkDecoder.link(from: object)
}

/// rtnl_link -> FlowctlCore.Link, shared by the dump and the monitor.
enum LinkDecoder {
    static let IFF_UP = UInt32(CLibNLRoute.IFF_UP)
    static let IFF_LOOPBACK = UInt32(CLibNLRoute.IFF_LOOPBACK)
    static let IFF_RUNNING = UInt32(CLibNLRoute.IFF_RUNNING)
    static let IFF_LOWER_UP = UInt32(CLibNLRoute.IFF_LOWER_UP.rawValue)
    static let IF_OPER_UNKNOWN = UInt8(CLibNLRoute.IF_OPER_UNKNOWN)
    static let IF_OPER_UP = UInt8(CLibNLRoute.IF_OPER_UP)

    static func link(from link: OpaquePointer) -> Link? {
        let index = rtnl_link_get_ifindex(link)
        guard index > 0, let namePointer = rtnl_link_get_name(link) else { return nil }
        let name = String(cString: namePointer)
        let flags = rtnl_link_get_flags(link)
        let infoKind = rtnl_link_get_type(link).map { String(cString: $0) }
        let kind = LinkKind(infoKind: infoKind, isLoopback: flags & IFF_LOOPBACK != 0)
        let master = rtnl_link_get_master(link)
        let lower = rtnl_link_get_link(link)
        let stacked = kind == .vlan || kind == .macvlan || kind == .macvtap
        let operstate = rtnl_link_get_operstate(link)
        let running = operstate == IF_OPER_UP
            || (operstate == IF_OPER_UNKNOWN && flags & (IFF_LOWER_UP | IFF_RUNNING) != 0)
        return Link(
            index: Int32(index), name: name, kind: kind,
            masterIndex: master > 0 ? Int32(master) : nil,
            lowerIndex: stacked && lower > 0 ? Int32(lower) : nil,
            vlanID: kind == .vlan && rtnl_link_is_vlan(link) != 0 ? UInt16(truncatingIfNeeded: rtnl_link_vlan_get_id(link)) : nil,
            isUp: flags & IFF_UP != 0, isRunning: running, mtu: rtnl_link_get_mtu(link),
            hwTCOffload: nil,
            vlanFiltering: kind == .bridge ? bridgeVLANFiltering(name) : nil,
            addressFixed: kind == .bridge ? sysfsByte("/sys/class/net/\(name)/addr_assign_type").map { $0 == UInt8(ascii: "3") } : nil)
    }

    /// libnl 3.7 does not decode IFLA_BR_VLAN_FILTERING; sysfs has it.
    /// The first byte of a sysfs attribute.
    static func sysfsByte(_ path: String) -> UInt8? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var byte: UInt8 = 0
        return read(fd, &byte, 1) == 1 ? byte : nil
    }

    static func bridgeVLANFiltering(_ name: String) -> Bool? {
        switch sysfsByte("/sys/class/net/\(name)/bridge/vlan_filtering") {
        case UInt8(ascii: "0"): return false
        case UInt8(ascii: "1"): return true
        default: return nil
        }
    }
}
