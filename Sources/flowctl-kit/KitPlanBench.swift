import FlowctlCore
import Foundation

/// `flowctl-kit plan-bench [PORTS] [ROUNDS] [ROUTES]`: CPU cost of one daemon
/// pass's pure part (topology update, plan, diff) on a bridge with PORTS
/// ports and ROUTES extra /32 routes (a routed host with one per VM) over 4 uplinks.
/// Prints microseconds per round for each step; reports, does not judge.
enum KitPlanBench {
    static func run(_ args: [String]) throws {
        let ports = args.first.flatMap(Int.init) ?? 1000
        let rounds = args.dropFirst().first.flatMap(Int.init) ?? 200
        let extraRoutes = args.dropFirst(2).first.flatMap(Int.init) ?? 0
        var links = [Link(index: 1, name: "lo", kind: .loopback), Link(index: 2, name: "eth0", kind: .physical),
                     Link(index: 3, name: "br0", kind: .bridge)]
        for i in 0..<4 { links.append(Link(index: Int32(4 + i), name: "up\(i)", kind: .physical)) }
        for i in 0..<ports { links.append(Link(index: Int32(10 + i), name: "p\(i)", kind: .tun, masterIndex: 3)) }
        var routes = [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])]
        for i in 0..<extraRoutes {
            routes.append(Route(family: .ipv4, destination: "198.18.\(i / 250).\(i % 250)/32", prefixLength: 32,
                                outputIndices: [Int32(4 + i % 4)]))
        }
        var topology = Topology(links: links, routes: routes)
        let intent = Intent(bridges: ["br0": BridgeIntent()])
        let planner = Planner(), differ = Differ()
        let base = try planner.plan(intent: intent, topology: topology).desired!
        let kernel = KernelTable(ref: FlowctlNames.table, comment: FlowctlNames.tableComment,
                                 flowtables: [KernelFlowtable(name: base.flowtable.name, priority: 0,
                                                              devices: base.flowtable.devices, counter: true,
                                                              hardwareOffload: false)],
                                 sets: [KernelSet(name: base.interfaceSet.name, keyType: 41, keyLength: 16,
                                                  elements: base.interfaceSet.elements)],
                                 chains: [KernelChain(name: "forward", type: "filter", hook: .forward,
                                                      priority: FlowctlNames.forwardPriority)],
                                 rules: base.rules.enumerated().map { KernelRule(chain: "forward", handle: UInt64($0.offset), comment: $0.element.id, expressions: $0.element.expressions) })
        var apply = Duration.zero, plan = Duration.zero, diff = Duration.zero
        let clock = ContinuousClock()
        for round in 0..<rounds {
            let link = Link(index: Int32(100_000 + round), name: "x\(round)", kind: .tun, masterIndex: 3)
            apply += clock.measure { topology.apply(.link(link)) }
            var desired: DesiredRuleset?
            plan += try clock.measure { desired = try planner.plan(intent: intent, topology: topology).desired }
            diff += try clock.measure { _ = try differ.diff(kernel: kernel, desired: desired) }
            topology.apply(.linkRemoved(index: link.index, name: link.name))
        }
        func us(_ d: Duration) -> String { String(format: "%.1f", Double(d.components.attoseconds) / 1e12 / Double(rounds) + Double(d.components.seconds) * 1e6 / Double(rounds)) }
        print("ports \(ports), routes \(routes.count): topology.apply \(us(apply)) us, plan \(us(plan)) us, diff \(us(diff)) us per round")
    }
}
