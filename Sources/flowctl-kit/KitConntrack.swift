import FlowctlCore
import FlowctlLinux

/// `flowctl-kit conntrack`: the ConntrackSummary ctnetlink gives, as JSON.
enum KitConntrack {
    static func run(_ args: [String]) throws {
        try KitNftables.emit(try ConntrackReader().summary())
    }
}
