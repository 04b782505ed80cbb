import FlowctlCore
import FlowctlDaemon
import FlowctlTesting
import Foundation
import Logging

/// `flowctl-kit engine-bench [PORTS] [ROUNDS]`: the daemon's whole userland
/// pass for one route event (receive, plan, diff, batch, change log,
/// bookkeeping) against the in-memory nf_tables, on a bridge with PORTS
/// ports: each round a /32 route through a link without one joins it to
/// the flowtable, then its deletion takes it out. The kernel's own commit
/// is not in it (Bench/hotplug.sh times that in the lab). Prints
/// microseconds per event; reports, does not judge.
enum KitEngineBench {
    static func run(_ args: [String]) throws {
        let ports = args.first.flatMap(Int.init) ?? 1000
        let rounds = args.dropFirst().first.flatMap(Int.init) ?? 200
        var links = [Link(index: 1, name: "lo", kind: .loopback), Link(index: 2, name: "eth0", kind: .physical),
                     Link(index: 3, name: "br0", kind: .bridge), Link(index: 4, name: "rtb0", kind: .dummy)]
        for i in 0..<ports { links.append(Link(index: Int32(10 + i), name: "p\(i)", kind: .tun, masterIndex: 3)) }
        let source = FakeTopologySource(Topology(links: links, routes: [
            Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2]),
        ]))
        let backend = FakeRulesetBackend()
        let directory = NSTemporaryDirectory() + "flowctl-engine-bench-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = IntentStore(directory: directory)
        try store.save(Intent(bridges: ["br0": BridgeIntent()]))
        var logger = Logger(label: "engine-bench")
        logger.logLevel = .warning
        var settings = ReevaluationScheduler.Settings()
        settings.automatic = false
        let engine = try SyncEngine(topologySource: source, backend: backend, store: store, logger: logger,
                                    ownPID: 1, coherence: settings)
        engine.step()
        let clock = ContinuousClock()
        var total = Duration.zero
        for round in 0..<rounds {
            let route = Route(family: .ipv4, destination: "198.18.201.\(round % 250)", prefixLength: 32, outputIndices: [4])
            for removed in [false, true] {
                let change = RouteChange(family: .ipv4, destination: route.destination, prefixLength: 32,
                                         table: Route.mainTable, removed: removed, isUnicast: true, route: route)
                total += clock.measure {
                    engine.receive([.route(change)])
                    engine.step()
                }
            }
        }
        let events = Double(rounds * 2)
        let microseconds = (Double(total.components.seconds) * 1e6 + Double(total.components.attoseconds) / 1e12) / events
        print("ports \(ports): \(String(format: "%.1f", microseconds)) us per route event (batches \(engine.statistics.batches), route reads \(engine.statistics.routeReads ?? 0))")
    }
}
