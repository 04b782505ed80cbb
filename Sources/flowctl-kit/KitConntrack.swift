import FlowctlCore
enum KitConntrack { static func run(_ args: [String]) throws { fatalError("not yet") } }
