import ArgumentParser
import FlowctlCore
import FlowctlDaemon

extension HWOffloadMode: ExpressibleByArgument {}

struct EnableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable",
        abstract: "Switch the fast path on for a bridge's VMs and containers.",
        discussion: """
            Puts the bridge's ports and the uplinks (the devices behind the default \
            routes, or those named with --uplink) into flowctl's flowtable, resolved \
            through VLANs and bridges to the real devices, and offloads established \
            TCP and UDP flows entering or leaving the bridge. The choice is stored \
            and re-applied by later runs.
            """)

    @Argument(help: "The bridge to enable, e.g. br0, or a shell-style pattern ('virbr*'): every bridge that matches, now and later.")
    var bridge: String

    @Option(name: .customLong("uplink"), help: ArgumentHelp(
        "An uplink device (repeatable). Default: the devices of the default routes.", valueName: "dev"))
    var uplinks: [String] = []

    @Option(name: .customLong("exclude-uplink"), help: ArgumentHelp(
        "A device (or pattern, 'wg*') the routes lead to that must not be an uplink (repeatable).", valueName: "dev"))
    var excludedUplinks: [String] = []

    @Option(name: .customLong("hw-offload"), help: "Hardware offload: auto, on or off.")
    var hwOffload: HWOffloadMode = .auto

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        do {
            try BridgeIntent(uplinks: uplinks, hwOffload: hwOffload, excludedUplinks: excludedUplinks)
                .validate(bridge: bridge)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        try guarded {
            let options = BridgeIntent(uplinks: uplinks, hwOffload: hwOffload, excludedUplinks: excludedUplinks)
            var request = ControlRequest(command: .enable, bridge: bridge, uplinks: uplinks, hwOffload: hwOffload)
            request.excludedUplinks = excludedUplinks
            if let response = try state.daemon(request),
               let outcome = response.outcome
            {
                if output.json {
                    return try printJSON(ChangeReport(command: "enable", bridge: bridge, enabled: true, outcome: outcome,
                                                      intent: response.intent, throughDaemon: true))
                }
                say("\(Report.enabled(bridge, in: outcome.plan)): fast path on (through the daemon)" + (outcome.plan.offload.map { ", \($0)" } ?? ""))
                Report.devices(outcome.plan, bridge: bridge)
                Report.changes(outcome)
                outcome.warnings.forEach(warn)
                return
            }
            var wasEnabled = false
            // A pattern may match nothing yet; an exact name must exist.
            let required: Set<String> = Intent.isPattern(bridge) ? [] : [bridge]
            let (intent, outcome) = try change(store: state.store, required: required) { intent in
                wasEnabled = intent.bridges[bridge] == options
                intent.bridges[bridge] = options
            }
            if output.json {
                return try printJSON(ChangeReport(command: "enable", bridge: bridge, enabled: true, outcome: outcome,
                                                  intent: intent, throughDaemon: false))
            }
            say("\(Report.enabled(bridge, in: outcome.plan)): fast path \(wasEnabled ? "already on" : "on")"
                + (outcome.plan.offload.map { ", \($0)" } ?? ""))
            Report.devices(outcome.plan, bridge: bridge)
            Report.changes(outcome)
            outcome.warnings.forEach(warn)
        }
    }
}
