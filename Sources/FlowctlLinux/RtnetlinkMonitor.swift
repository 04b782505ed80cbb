import CLibNLRoute
import FlowctlCore
import Glibc

/// rtnetlink notifications through libnl-route-3: link changes become
/// TopologyEvent values at once; route changes only say "re-read routes".
/// Subscribe first, then dump (the daemon does), so nothing is missed.
public final class RtnetlinkMonitor: TopologyEventSource {
    private let socket: OpaquePointer
    fileprivate var pending: [TopologyEvent] = []

    static let RTM_NEWLINK: UInt16 = 16
    static let RTM_DELLINK: UInt16 = 17
    static let RTM_NEWROUTE: UInt16 = 24
    static let RTM_DELROUTE: UInt16 = 25

    public init() throws {
        guard let socket = nl_socket_alloc() else {
            throw KernelError(operation: "subscribe to rtnetlink", errno: ENOMEM, reason: "out of memory")
        }
        self.socket = socket
        nl_socket_disable_seq_check(socket)
        let context = Unmanaged.passUnretained(self).toOpaque()
        nl_socket_modify_cb(socket, NL_CB_VALID, NL_CB_CUSTOM, rtnetlinkMonitorCallback, context)
        let connected = nl_connect(socket, NETLINK_ROUTE)
        guard connected == 0 else {
            nl_socket_free(socket)
            throw KernelError(operation: "subscribe to rtnetlink", errno: EPROTO,
                              reason: String(cString: nl_geterror(connected)))
        }
        for group in [RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE] {
            let joined = nl_socket_add_membership(socket, Int32(group.rawValue))
            guard joined == 0 else {
                nl_socket_free(socket)
                throw KernelError(operation: "join rtnetlink group \(group.rawValue)", errno: EPROTO,
                                  reason: String(cString: nl_geterror(joined)))
            }
        }
        _ = nl_socket_set_nonblocking(socket)
        // Room for a burst of thousands of notifications; ENOBUFS is still handled.
        _ = nl_socket_set_buffer_size(socket, 8 << 20, 0)
    }

    deinit { nl_socket_free(socket) }

    public var pollDescriptor: Int32 { nl_socket_get_fd(socket) }

    public func drain() throws -> [TopologyEvent] {
        while true {
            let received = nl_recvmsgs_default(socket)
            if received >= 0 { continue }
            if -received == NLE_AGAIN { break }
            // ENOBUFS (libnl: NLE_NOMEM) or any decoding failure: events were lost.
            pending.append(.lost(reason: String(cString: nl_geterror(received))))
            break
        }
        defer { pending.removeAll() }
        return pending
    }

    fileprivate func handle(_ message: OpaquePointer) {
        guard let header = nlmsg_hdr(message) else { return }
        switch header.pointee.nlmsg_type {
        case Self.RTM_NEWLINK, Self.RTM_DELLINK:
            let removed = header.pointee.nlmsg_type == Self.RTM_DELLINK
            var box = ParsedLink()
            withUnsafeMutablePointer(to: &box) { pointer in
                _ = nl_msg_parse(message, rtnetlinkMonitorParse, UnsafeMutableRawPointer(pointer))
            }
            guard let link = box.link else {
                pending.append(.lost(reason: "undecodable link message"))
                return
            }
            pending.append(removed ? .linkRemoved(index: link.index, name: link.name) : .link(link))
        case Self.RTM_NEWROUTE, Self.RTM_DELROUTE:
            // Only default routes decide uplinks. A device coming up brings
            // IPv6 link-local and multicast routes; those must not cost a resync.
            var box = ParsedRoute()
            withUnsafeMutablePointer(to: &box) { pointer in
                _ = nl_msg_parse(message, rtnetlinkMonitorParseRoute, UnsafeMutableRawPointer(pointer))
            }
            guard box.decoded else {
                pending.append(.lost(reason: "undecodable route message"))
                return
            }
            if box.isDefault, pending.last != .routesChanged { pending.append(.routesChanged) }
        default:
            break
        }
    }
}

private struct ParsedRoute {
    var decoded = false
    var isDefault = false
}

private func rtnetlinkMonitorParseRoute(_ object: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    guard let object, let context else { return }
    let box = context.assumingMemoryBound(to: ParsedRoute.self)
    box.pointee.decoded = true
    // Any type (a default route turning unreachable matters too), any table but local.
    let dst = rtnl_route_get_dst(object)
    box.pointee.isDefault = (dst == nil || nl_addr_get_prefixlen(dst) == 0) && rtnl_route_get_table(object) != 255
}

private struct ParsedLink {
    var link: Link?
}

private func rtnetlinkMonitorCallback(_ message: OpaquePointer?, _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let message, let context else { return Int32(NL_SKIP.rawValue) }
    Unmanaged<RtnetlinkMonitor>.fromOpaque(context).takeUnretainedValue().handle(message)
    return Int32(NL_OK.rawValue)
}

private func rtnetlinkMonitorParse(_ object: OpaquePointer?, _ context: UnsafeMutableRawPointer?) {
    guard let object, let context else { return }
    let box = context.assumingMemoryBound(to: ParsedLink.self)
    box.pointee.link = LinkDecoder.link(from: object)
}

/// rtnl_link -> FlowctlCore.Link, shared by the dump and the monitor.
enum LinkDecoder {
    static let IFF_UP: UInt32 = 0x1
    static let IFF_LOOPBACK: UInt32 = 0x8
    static let IFF_RUNNING: UInt32 = 0x40
    static let IFF_LOWER_UP: UInt32 = 0x10000
    static let IF_OPER_UNKNOWN: UInt8 = 0
    static let IF_OPER_UP: UInt8 = 6

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
        let fd = open("/sys/class/net/\(name)/bridge/vlan_filtering", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var byte: UInt8 = 0
        guard read(fd, &byte, 1) == 1 else { return nil }
        switch byte {
        case UInt8(ascii: "0"): return false
        case UInt8(ascii: "1"): return true
        default: return nil
        }
    }
}
