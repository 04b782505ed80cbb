import Foundation
import FlowctlCore

/// Human-readable output shared by the commands.
enum Report {
    static func devices(_ plan: Plan, bridge: String? = nil) {
        let devices = plan.devices.filter { device in
            bridge.map { name in device.reasons.contains { $0.bridge == name } } ?? true
        }
        if devices.isEmpty {
            say("  flowtable: no devices")
            return
        }
        say("  flowtable \(FlowctlNames.table) \(FlowctlNames.flowtable): \(devices.count) device\(devices.count == 1 ? "" : "s")")
        let width = devices.map(\.name.count).max() ?? 0
        for device in devices {
            let padded = device.name.padding(toLength: width, withPad: " ", startingAt: 0)
            say("    \(padded)  \(device.kind.description.padding(toLength: 8, withPad: " ", startingAt: 0)) \(device.reasons.map(\.description).joined(separator: "; "))")
        }
    }

    static func changes(_ outcome: ReconcileOutcome) {
        if outcome.batch.isEmpty {
            say("  kernel already up to date: nothing sent")
        } else {
            let count = outcome.batch.changes.count
            say("  applied \(count) change\(count == 1 ? "" : "s") in one atomic batch")
            for line in ChangeLog.repairs(in: outcome.batch, desired: outcome.plan.desired,
                                          kernel: outcome.kernelBefore) {
                say("  \(line)")
            }
        }
    }
}
