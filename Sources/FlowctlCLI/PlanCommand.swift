import ArgumentParser
import FlowctlCore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Dry run: show what reconciling the stored intent would change, as nft commands.",
        discussion: """
            With a bridge (or pattern), previews what `flowctl enable` with the same \
            options would do, without storing or sending anything.
            """)

    @Argument(help: "Preview enabling this bridge or pattern (with the options below).")
    var bridge: String?

    @Option(name: .customLong("uplink"), help: ArgumentHelp("As for enable.", valueName: "dev"))
    var uplinks: [String] = []

    @Option(name: .customLong("exclude-uplink"), help: ArgumentHelp("As for enable.", valueName: "dev"))
    var excludedUplinks: [String] = []

    @Option(name: .customLong("hw-offload"), help: "As for enable.")
    var hwOffload: HWOffloadMode?

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard let bridge else {
            if !uplinks.isEmpty || !excludedUplinks.isEmpty || hwOffload != nil {
                throw ValidationError("--uplink, --exclude-uplink and --hw-offload preview an enable: name the bridge")
            }
            return
        }
        do {
            try BridgeIntent(uplinks: uplinks, hwOffload: hwOffload ?? .auto, excludedUplinks: excludedUplinks)
                .validate(bridge: bridge)
        } catch {
            throw ValidationError(error.description)
        }
    }

    struct Report: Codable {
        var enabled: [String]
        var changes: [String]
        /// The whole table flowctl wants, in nft syntax (nil: no table).
        var desired: String?
        var plan: Plan
        var warnings: [String]
    }

    func run() throws {
        try guarded {
            let store = state.store
            var intent = try store.load()
            var required: Set<String> = []
            if let bridge {
                intent.bridges[bridge] = BridgeIntent(uplinks: uplinks, hwOffload: hwOffload ?? .auto,
                                                      excludedUplinks: excludedUplinks)
                if !Intent.isPattern(bridge) { required = [bridge] }
            }
            let outcome = try Reconciler(edges: Runtime.makeEdges()).reconcile(intent: intent, required: required,
                                                                               dryRun: true)
            let report = Report(
                enabled: intent.bridgeNames, changes: NftText.commands(outcome.batch),
                desired: outcome.plan.desired.map(NftText.render), plan: outcome.plan, warnings: outcome.warnings)
            if output.json { try printJSON(report); return }
            if let bridge {
                say("# enabling \(FlowctlCLI.Report.enabled(bridge, in: outcome.plan)) (preview: nothing is stored or sent)")
                FlowctlCLI.Report.devices(outcome.plan, bridge: bridge)
            }
            if report.changes.isEmpty {
                say("# nothing to change: the kernel matches \(bridge == nil ? "the stored intent" : "it") (\(intent.isEmpty ? "no bridge enabled" : intent.bridgeNames.joined(separator: ", ")))")
            } else {
                say("# \(report.changes.count) change\(report.changes.count == 1 ? "" : "s"), sent as one atomic batch:")
                report.changes.forEach { say($0) }
            }
            if let offload = outcome.plan.offload { say("# offload: \(offload)") }
            if let desired = report.desired {
                say("\n# resulting table:")
                say(desired, terminator: "")
            }
            report.warnings.forEach(warn)
        }
    }
}

func say(_ text: String, terminator: String) { Runtime.standardOutput(text + terminator) }
