import ArgumentParser
import FlowctlCore
import FlowctlDaemon

/// Brings the kernel back to the stored intent: after a reboot without the
/// daemon, or when `status` lists pending changes.
struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Re-apply the stored intent (what `status` lists as pending).",
        discussion: "With a daemon running, asks it for a full resync instead.")

    @OptionGroup var state: StateOptions

    func run() throws {
        try guarded {
            if let response = try state.daemon(ControlRequest(command: .resync)) {
                say("resynchronised (through the daemon)")
                if let outcome = response.outcome { Report.changes(outcome) }
                return
            }
            let store = state.store
            guard store.directoryExists else {
                // Applying "nothing enabled" would remove the fast path: a typo must not.
                throw ValidationError("state directory \(store.directory) does not exist: no stored intent to apply (nothing was changed)")
            }
            let (intent, outcome) = try change(store: store) { _ in }
            if outcome.batch.isEmpty {
                say("nothing to change: the kernel matches the stored intent"
                    + " (\(intent.isEmpty ? "no bridge enabled" : intent.bridgeNames.joined(separator: ", ")))")
            } else {
                say("applied the stored intent (\(intent.isEmpty ? "no bridge enabled" : intent.bridgeNames.joined(separator: ", ")))")
                Report.changes(outcome)
            }
            outcome.warnings.forEach(warn)
        }
    }
}
