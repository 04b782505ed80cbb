import ArgumentParser
import FlowctlCore
import FlowctlDaemon

struct DisableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Switch the fast path off for a bridge.",
        discussion: """
            Removes the bridge's devices from the flowtable (flows they carry return \
            to the slow path); when no bridge is left enabled, removes flowctl's \
            table altogether.
            """)

    @Argument(help: "The bridge (or the pattern, as enabled) to disable.")
    var bridge: String

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        try validateInterfaceName(bridge, what: "bridge")
    }

    func run() throws {
        try guarded {
            if let response = try state.daemon(ControlRequest(command: .disable, bridge: bridge)),
               let outcome = response.outcome
            {
                if output.json {
                    return try printJSON(ChangeReport(command: "disable", bridge: bridge, enabled: false, outcome: outcome,
                                                      intent: response.intent, throughDaemon: true))
                }
                say("\(bridge): fast path off (through the daemon)")
                if response.intent?.isEmpty ?? false { say("  no bridge left enabled: flowctl's table is gone") }
                Report.changes(outcome)
                return
            }
            let (intent, outcome) = try change(store: state.store) { intent in
                guard intent.bridges.removeValue(forKey: bridge) != nil else {
                    let enabled = intent.bridgeNames.isEmpty ? "none" : intent.bridgeNames.joined(separator: ", ")
                    throw DisableError.notEnabled(bridge, enabled: enabled)
                }
            }
            if output.json {
                return try printJSON(ChangeReport(command: "disable", bridge: bridge, enabled: false, outcome: outcome,
                                                  intent: intent, throughDaemon: false))
            }
            say("\(bridge): fast path off")
            if intent.isEmpty { say("  no bridge left enabled: flowctl's table is gone") }
            Report.changes(outcome)
            outcome.warnings.forEach(warn)
        }
    }
}

enum DisableError: Error, CustomStringConvertible {
    case notEnabled(String, enabled: String)
    var description: String {
        switch self {
        case .notEnabled(let bridge, let enabled): "\(bridge) is not enabled (enabled: \(enabled))"
        }
    }
}
