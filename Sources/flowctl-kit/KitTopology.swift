import FlowctlCore
import FlowctlLinux

/// `flowctl-kit topology`: the Topology rtnetlink reports, as JSON.
enum KitTopology {
    static func run(_ args: [String]) throws {
        try KitNftables.emit(try RtnetlinkTopologySource().snapshot())
    }
}
