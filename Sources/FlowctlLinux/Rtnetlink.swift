import CLibNLRoute
import FlowctlCore
import Glibc

/// The host's links and routes through libnl-route-3 (one link dump, one
/// route dump), plus hw-tc-offload from ethtool for the devices that could
/// have it.
public struct RtnetlinkTopologySource: TopologySource {
    public init() {}

    public func snapshot() throws -> Topology {
        let socket = try RouteSocket(operation: "read links and routes through rtnetlink")
        let ethtool = EthtoolReader()
        var links: [Link] = []
        try socket.withCache(rtnl_link_alloc_cache, what: "links") { object in
            guard var link = LinkDecoder.link(from: object) else { return }
            link.hwTCOffload = ethtool.hwTCOffload(link.name, kind: link.kind)
            links.append(link)
        }
        return Topology(links: links, routes: try Self.routes(socket))
    }

    public func routes() throws -> [Route] {
        try Self.routes(RouteSocket(operation: "read routes through rtnetlink"))
    }

    static func routes(_ socket: RouteSocket) throws -> [Route] {
        var routes: [Route] = []
        try socket.withCache({ rtnl_route_alloc_cache($0, $1, 0, $2) }, what: "routes") { object in
            if let route = RouteDecoder.route(from: object) { routes.append(route) }
        }
        return routes
    }

    public func interfaceIndex(of name: String) -> Int32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : Int32(index)
    }
}

/// A connected NETLINK_ROUTE libnl socket, freed with the value.
final class RouteSocket {
    let socket: OpaquePointer
    let operation: String

    init(operation: String) throws {
        self.operation = operation
        guard let socket = nl_socket_alloc() else {
            throw KernelError.system(operation, ENOMEM)
        }
        let connected = nl_connect(socket, NETLINK_ROUTE)
        guard connected == 0 else {
            nl_socket_free(socket)
            throw NetlinkLibraryError.kernelError(operation, connected)
        }
        self.socket = socket
    }

    deinit { nl_socket_free(socket) }

    /// Dumps into a libnl cache, visits every object, frees the cache.
    func withCache(_ allocate: (OpaquePointer?, Int32, UnsafeMutablePointer<OpaquePointer?>?) -> Int32, what: String,
                   _ visit: (OpaquePointer) throws -> Void) throws
    {
        var cache: OpaquePointer?
        let result = allocate(socket, AF_UNSPEC, &cache)
        guard result == 0, let cache else { throw NetlinkLibraryError.kernelError("\(operation): \(what)", result) }
        defer { nl_cache_free(cache) }
        var object = nl_cache_get_first(cache)
        while let current = object {
            try visit(current)
            object = nl_cache_get_next(current)
        }
    }
}

enum NetlinkLibraryError {
    /// libnl's negative NLE_* code as a KernelError with the closest errno.
    static func kernelError(_ operation: String, _ code: Int32) -> KernelError {
        let nle = -code
        let errnoValue: Int32 = switch nle {
        case NLE_PERM: EPERM
        case NLE_NOACCESS: EACCES
        case NLE_NOMEM: ENOMEM
        case NLE_OBJ_NOTFOUND: ENOENT
        case NLE_AGAIN: EAGAIN
        case NLE_BUSY: EBUSY
        case NLE_OPNOTSUPP: EOPNOTSUPP
        case NLE_INTR: EINTR
        case NLE_DUMP_INTR: EINTR
        default: EIO
        }
        return KernelError(operation: operation, errno: errnoValue, reason: String(cString: nl_geterror(code)))
    }
}

/// rtnl_route -> FlowctlCore.Route (unicast routes only: local, broadcast
/// and unreachable routes lead nowhere an uplink could be).
enum RouteDecoder {
    static func route(from route: OpaquePointer) -> Route? {
        guard rtnl_route_get_type(route) == UInt8(RTN_UNICAST) else { return nil }
        let family: AddressFamily
        switch Int32(rtnl_route_get_family(route)) {
        case AF_INET: family = .ipv4
        case AF_INET6: family = .ipv6
        default: return nil
        }
        var prefix: UInt8 = 0
        var destination = family == .ipv4 ? "0.0.0.0/0" : "::/0"
        if let dst = rtnl_route_get_dst(route) {
            prefix = UInt8(truncatingIfNeeded: nl_addr_get_prefixlen(dst))
            if nl_addr_get_len(dst) > 0 {
                var buffer = [CChar](repeating: 0, count: 128)
                nl_addr2str(dst, &buffer, buffer.count)
                destination = String(cString: buffer)
                if !destination.contains("/") { destination += "/\(prefix)" }
            }
        }
        var outputs: [Int32] = []
        for n in 0..<rtnl_route_get_nnexthops(route) {
            if let hop = rtnl_route_nexthop_n(route, n) {
                let index = rtnl_route_nh_get_ifindex(hop)
                if index > 0 { outputs.append(index) }
            }
        }
        guard !outputs.isEmpty else { return nil }
        return Route(family: family, destination: destination, prefixLength: prefix,
                     table: rtnl_route_get_table(route), outputIndices: outputs,
                     metric: rtnl_route_get_priority(route), tos: rtnl_route_get_tos(route))
    }
}
