import FlowctlCore
enum KitTopology { static func run(_ args: [String]) throws { fatalError("not yet") } }
