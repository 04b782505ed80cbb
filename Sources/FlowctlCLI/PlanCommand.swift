import ArgumentParser
import FlowctlCore

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Dry run: show what reconciling the stored intent would change, as nft commands.")

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

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
            let intent = try store.load()
            let outcome = try Reconciler(edges: Runtime.makeEdges()).reconcile(intent: intent, dryRun: true)
            let report = Report(
                enabled: intent.bridgeNames, changes: NftText.commands(outcome.batch),
                desired: outcome.plan.desired.map(NftText.render), plan: outcome.plan, warnings: outcome.warnings)
            if output.json { try printJSON(report); return }
            if report.changes.isEmpty {
                say("# nothing to change: the kernel matches the stored intent (\(intent.isEmpty ? "no bridge enabled" : intent.bridgeNames.joined(separator: ", ")))")
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
