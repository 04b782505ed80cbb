import FlowctlCore
enum KitNftables {
    static func dump(_ args: [String]) throws { fatalError("not yet") }
    static func apply(_ args: [String]) throws { fatalError("not yet") }
}
