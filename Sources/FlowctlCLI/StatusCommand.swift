import Foundation
import ArgumentParser
import FlowctlCore
import FlowctlDaemon

/// What `status --json` prints.
struct StatusReport: Codable {
    struct Device: Codable {
        var name: String
        var kind: String
        var reasons: [String]
        /// Listed in the kernel's flowtable right now.
        var inFlowtable: Bool
    }
    struct Bridge: Codable {
        var name: String
        var interfaces: [String]
        var uplinks: [String]
        var hwOffload: HWOffloadMode
        var vlanFiltering: Bool?
        /// Nothing is routed through it: its traffic is only switched and
        /// gains nothing from the fast path.
        var layer2Only: Bool?
        /// The pattern that enabled it (`virbr*`), when not its exact name.
        var pattern: String?
        var devices: [Device]
    }
    struct Conntrack: Codable {
        var count: Int?
        var max: Int?
        var fill: Double?
        var warning: String?
    }
    var enabled: [String]
    var mode: String?
    var modeReason: String?
    var bridges: [Bridge]
    /// Devices in the kernel's flowtable (after this run's reconcile).
    var flowtableDevices: [String]
    var offloadedFlows: Int?
    var hardwareOffloadedFlows: Int?
    /// Packets that went through flowctl's forward chain: first packets of
    /// flows, and whatever the fast path handed back (FIN/RST, over MTU).
    var slowPathPackets: UInt64?
    var conntrack: Conntrack
    var changesApplied: [String]
    /// Rules that carried flowctl's comment with other content: put back by
    /// the changes applied (through the daemon), or pending (one-shot).
    var repairs: [String]
    /// One-shot status: what `flowctl apply` would change (status itself writes nothing).
    var pendingChanges: [String] = []
    var warnings: [String]
    /// Set when a running daemon answered.
    var daemon: DaemonInfo?
    /// What keeps the fast path from being fully in place; empty: it is
    /// (exit status 0; otherwise 3, for health checks).
    var problems: [String] = []

    /// Enabled bridges that cannot be served now, planned devices missing
    /// from the kernel's flowtable, pending changes.
    mutating func findProblems() {
        let missing = Set(enabled.filter { !Intent.isPattern($0) }).subtracting(bridges.map(\.name))
        problems = missing.sorted().map { "\($0) is enabled but not usable now" }
        let absent = Set(bridges.flatMap { $0.devices.filter { !$0.inFlowtable }.map(\.name) })
        if !absent.isEmpty { problems.append("not in the kernel's flowtable: \(absent.sorted().joined(separator: ", "))") }
        if !pendingChanges.isEmpty {
            problems.append("\(pendingChanges.count) change\(pendingChanges.count == 1 ? "" : "s") pending (`flowctl apply`)")
        }
    }
}

/// `status` exit status when the fast path is not fully in place (LSB's
/// "program is not running" for a status action).
let notInPlaceExitCode = ExitCode(3)

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each enabled bridge's fast path, offloaded flows and conntrack use.",
        discussion: """
            Reads only: what differs between the kernel and the stored intent is listed \
            as pending changes; `flowctl apply` (or the daemon) makes them. Exit status \
            for health checks: 0 when every enabled bridge's fast path is in place, 3 \
            when not (a bridge not usable, devices missing from the flowtable, changes \
            pending), 1 when status itself failed.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        var failure: ExitCode?
        try guarded {
            if let response = try state.daemon(ControlRequest(command: .status)) {
                guard let intent = response.intent, let outcome = response.outcome else {
                    throw ControlClientError.daemon("the daemon has not completed its first pass yet\(response.daemon?.statistics.lastError.map { ": \($0)" } ?? "")")
                }
                guard let conntrack = response.conntrack else {
                    throw ControlClientError.daemon("conntrack: \(response.conntrackError ?? "unavailable")")
                }
                var report = makeReport(intent: intent, outcome: outcome, table: response.table, conntrack: conntrack)
                report.daemon = response.daemon
                report.findProblems()
                defer { if !report.problems.isEmpty { failure = notInPlaceExitCode } }
                if output.json { try printJSON(report) } else {
                    printText(report)
                    if let daemon = response.daemon {
                        say("daemon: pid \(daemon.pid), up \(Int(daemon.uptimeSeconds)) s, \(daemon.statistics.events) events, \(daemon.statistics.batches) batches, \(daemon.statistics.resyncs) resyncs, \(daemon.statistics.errors) errors")
                        if let declared = daemon.declaredBridges, !declared.isEmpty {
                            say("declared in \(daemon.configurationFile ?? "the daemon's configuration"): \(declared.joined(separator: ", "))")
                        }
                        if let last = daemon.statistics.lastReevaluation {
                            let ago = Int(max(0, Date().timeIntervalSince1970 - last.time))
                            say("last re-evaluation \(ago) s ago (\(daemon.statistics.reevaluations) in all): \(last.line)")
                        } else {
                            say("last re-evaluation: none since the daemon started")
                        }
                    }
                }
                return
            }
            // One-shot: read only, nothing is written (not even the lock file).
            let edges = Runtime.makeEdges()
            let store = state.store
            let intent = try store.load()
            let outcome = try Reconciler(edges: edges).reconcile(intent: intent, dryRun: true)
            let conntrack = try edges.conntrack.summary()
            var report = makeReport(intent: intent, outcome: outcome, table: outcome.kernelBefore, conntrack: conntrack)
            report.pendingChanges = NftText.commands(outcome.batch)
            if !store.directoryExists {
                report.warnings.insert("state directory \(store.directory) does not exist: no bridge is enabled there", at: 0)
            }
            report.findProblems()
            if !report.problems.isEmpty { failure = notInPlaceExitCode }
            if output.json { try printJSON(report) } else { printText(report) }
        }
        if let failure { throw failure }
    }

    func makeReport(intent: Intent, outcome: ReconcileOutcome, table: KernelTable?, conntrack: ConntrackSummary)
        -> StatusReport
    {
        let inKernel = Set(table?.flowtables.first { $0.name == FlowctlNames.flowtable }?.devices ?? [])
        let bridges = outcome.plan.bridges.map { bridge in
            StatusReport.Bridge(
                name: bridge.name, interfaces: bridge.interfaces, uplinks: bridge.intent.uplinks,
                hwOffload: bridge.intent.hwOffload, vlanFiltering: bridge.vlanFiltering, layer2Only: bridge.layer2Only,
                pattern: bridge.pattern,
                devices: outcome.plan.devices.filter { $0.reasons.contains { $0.bridge == bridge.name } }.map {
                    StatusReport.Device(name: $0.name, kind: $0.kind.description,
                                        reasons: $0.reasons.filter { $0.bridge == bridge.name }.map(\.description),
                                        inFlowtable: inKernel.contains($0.name))
                })
        }
        var warnings = outcome.warnings
        let conntrackWarning = conntrack.fillWarning
        if let conntrackWarning { warnings.append(conntrackWarning) }
        let slowPath = table?.rules.compactMap(\.packets).reduce(0, +)
        return StatusReport(
            enabled: intent.bridgeNames,
            mode: outcome.plan.offload.map { $0.hardware ? "hardware" : "software" },
            modeReason: outcome.plan.offload?.reason,
            bridges: bridges, flowtableDevices: inKernel.sorted(),
            offloadedFlows: conntrack.offloaded, hardwareOffloadedFlows: conntrack.hardwareOffloaded,
            slowPathPackets: slowPath,
            conntrack: .init(count: conntrack.count, max: conntrack.max, fill: conntrack.fill,
                             warning: conntrackWarning),
            changesApplied: outcome.applied ? NftText.commands(outcome.batch) : [],
            // Applied by the daemon, or pending in a one-shot dry run.
            repairs: ChangeLog.repairs(in: outcome.batch, desired: outcome.plan.desired, kernel: outcome.kernelBefore),
            warnings: warnings)
    }

    func printText(_ report: StatusReport) {
        if report.enabled.isEmpty {
            say("no bridge enabled (flowctl enable BRIDGE)")
        }
        for bridge in report.bridges {
            say("\(bridge.name): enabled\(bridge.pattern.map { " (pattern \($0))" } ?? ""), \(report.mode ?? "no") fast path"
                + (report.modeReason.map { " (\($0))" } ?? ""))
            say("  matches traffic entering or leaving: \(bridge.interfaces.joined(separator: ", "))"
                + (bridge.vlanFiltering == true ? " (VLAN filtering on)" : ""))
            if bridge.layer2Only == true {
                say("  layer 2 only: nothing is routed through \(bridge.name), so its switched traffic gains nothing")
            }
            if bridge.devices.isEmpty { say("  devices: none yet") }
            let width = bridge.devices.map(\.name.count).max() ?? 0
            for device in bridge.devices {
                let name = device.name.padding(toLength: width, withPad: " ", startingAt: 0)
                let kind = device.kind.padding(toLength: 8, withPad: " ", startingAt: 0)
                say("    \(name)  \(kind) \(device.reasons.joined(separator: "; "))"
                    + (device.inFlowtable ? "" : "  [NOT in the kernel's flowtable]"))
            }
        }
        let missingBridges = Set(report.enabled.filter { !Intent.isPattern($0) }).subtracting(report.bridges.map(\.name))
        for name in missingBridges.sorted() { say("\(name): enabled, but not usable now (see warnings)") }
        for pattern in report.enabled where Intent.isPattern(pattern) {
            let matched = report.bridges.filter { $0.pattern == pattern }.map(\.name)
            say("pattern \(pattern): " + (matched.isEmpty ? "matches no bridge yet" : "matches \(matched.joined(separator: ", "))"))
        }
        if !report.enabled.isEmpty {
            say("flows offloaded now: \(report.offloadedFlows ?? 0)"
                + ((report.hardwareOffloadedFlows ?? 0) > 0 ? " (\(report.hardwareOffloadedFlows!) in hardware)" : ""))
            if let slow = report.slowPathPackets { say("packets through flowctl's forward chain: \(slow)") }
        }
        if let count = report.conntrack.count, let max = report.conntrack.max {
            let percent = String(format: "%.1f", Double(count) * 100 / Double(Swift.max(max, 1)))
            say("conntrack: \(count) / \(max) entries (\(percent)%)")
        } else {
            say("conntrack: count unavailable (nf_conntrack not loaded?)")
        }
        if !report.pendingChanges.isEmpty {
            say("NOT in sync with the stored intent: \(report.pendingChanges.count) pending change\(report.pendingChanges.count == 1 ? "" : "s") (`flowctl apply` makes them):")
            for line in report.pendingChanges.prefix(20) { say("  \(BatchError.abbreviated(line))") }
            if report.pendingChanges.count > 20 { say("  ... (\(report.pendingChanges.count - 20) more; `flowctl plan` lists all)") }
            report.repairs.forEach { say("  " + $0.replacingOccurrences(of: ") repaired:", with: ") to be repaired:")) }
        }
        if !report.changesApplied.isEmpty {
            say("re-applied \(report.changesApplied.count) change\(report.changesApplied.count == 1 ? "" : "s") to match the stored intent")
            report.repairs.forEach { say("  \($0)") }
        }
        report.warnings.forEach(warn)
        if !report.problems.isEmpty { say("not fully in place: \(report.problems.joined(separator: "; "))") }
    }
}
