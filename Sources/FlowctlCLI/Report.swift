import Foundation
import FlowctlCore

/// Human-readable output shared by the commands.
enum Report {
    /// `bridge`: an enabled name or pattern (its matched bridges' devices).
    static func devices(_ plan: Plan, bridge: String? = nil) {
        let devices = devices(of: plan, bridge: bridge)
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

    /// The plan's devices that serve `bridge` (a name or pattern; nil: all).
    static func devices(of plan: Plan, bridge: String?) -> [PlannedDevice] {
        let names = bridge.map { key in
            Set(plan.bridges.filter { $0.name == key || $0.pattern == key }.map(\.name) + [key])
        }
        return plan.devices.filter { device in
            names.map { names in device.reasons.contains { names.contains($0.bridge) } } ?? true
        }
    }

    /// "br0", or for a pattern "virbr* (virbr0, virbr1)" / "virbr* (no bridge matches yet)".
    static func enabled(_ key: String, in plan: Plan) -> String {
        guard Intent.isPattern(key) else { return key }
        let matched = plan.bridges.filter { $0.pattern == key }.map(\.name)
        return "\(key) (" + (matched.isEmpty ? "no bridge matches yet" : "matches \(matched.joined(separator: ", "))") + ")"
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
