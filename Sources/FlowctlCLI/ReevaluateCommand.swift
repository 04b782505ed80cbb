import ArgumentParser
import FlowctlCore
import FlowctlDaemon
import Foundation

struct ReevaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reevaluate",
        abstract: "Send offloaded flows back through the current rules once.",
        discussion: """
            For changes that send no nftables or rtnetlink notification (iptables-legacy, \
            ipset, a security-group agent that changed a set): flowctl's flowtable is \
            recreated in one atomic batch, so every offloaded flow's next packet meets the \
            current rules and bridge state; flows still allowed are offloaded again on that \
            packet, with their conntrack entries intact. With no bridge named, every enabled \
            bridge. The kernel cannot single out a bridge's or a port's flows while keeping \
            their conntrack state, so naming one checks that it is served and re-evaluates \
            the whole flowtable. Goes through the daemon when one runs.
            """)

    @Argument(help: "Enabled bridges (default: all).")
    var bridges: [String] = []

    @Option(name: .customLong("port"), help: ArgumentHelp("A port of an enabled bridge (repeatable).", valueName: "dev"))
    var ports: [String] = []

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        for bridge in bridges { try validateInterfaceName(bridge, what: "bridge") }
        for port in ports { try validateInterfaceName(port, what: "port") }
    }

    func run() throws {
        try guarded {
            let record: ReevaluationRecord
            var through = ""
            if let response = try state.daemon(ControlRequest(command: .reevaluate, bridges: bridges, ports: ports)) {
                guard let answer = response.reevaluation else {
                    throw ControlClientError.protocolError("no re-evaluation in the daemon's answer")
                }
                record = answer
                through = " (through the daemon)"
            } else {
                let edges = Runtime.makeEdges()
                record = try asHostWriter {
                    try OneShotReevaluation.run(
                        bridges: bridges, ports: ports, intent: try state.store.load(), topology: edges.topology,
                        backend: edges.backend, conntrack: edges.conntrack, clock: { Date().timeIntervalSince1970 })
                }
            }
            if output.json { return try printJSON(record) }
            say(record.line + through)
            say("  flows still allowed are offloaded again on their next packet")
        }
    }
}
