import ArgumentParser
import FlowctlCore
import Foundation

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Probe what this kernel and host support, and name what is missing.",
        discussion: """
            Every nf_tables feature is probed with throwaway objects in a dry-run \
            batch that the kernel checks and then aborts: nothing is ever created. \
            Exits 1 when something flowctl needs is missing.
            """)

    @OptionGroup var state: StateOptions
    @OptionGroup var output: OutputOptions

    struct Check: Codable {
        enum Status: String, Codable { case ok, missing, warning, info }
        var name: String
        var status: Status
        var detail: String
        /// Kernel options that provide the feature, when it is missing.
        var kernelOptions: [String]
        /// flowctl cannot work without it.
        var required: Bool
    }

    struct Report: Codable {
        var usable: Bool
        var checks: [Check]
    }

    func run() throws {
        try guarded {
            let report = diagnose(edges: Runtime.makeEdges())
            if output.json {
                try printJSON(report)
            } else {
                for check in report.checks {
                    let mark = switch check.status {
                    case .ok: "ok     "
                    case .missing: "MISSING"
                    case .warning: "warning"
                    case .info: "info   "
                    }
                    var line = "\(mark) \(check.name): \(check.detail)"
                    if check.status == .missing && !check.kernelOptions.isEmpty {
                        line += " [needs \(check.kernelOptions.joined(separator: ", "))]"
                    }
                    say(line)
                }
                say(report.usable ? "flowctl can run on this host" : "flowctl cannot run on this host: see MISSING above")
            }
            if !report.usable { throw ExitCode.failure }
        }
    }

    func diagnose(edges: Edges) -> Report {
        var checks: [Check] = []
        let required: Set<String> = [FeatureProbe.nfTables.name, FeatureProbe.flowtable.name,
                                     FeatureProbe.flowOffload.name, FeatureProbe.tableComment.name]
        let root = geteuid() == 0
        checks.append(Check(name: "privileges", status: root ? .ok : .warning,
                            detail: root ? "running as root" : "not root: probes need CAP_NET_ADMIN and may fail for that reason alone",
                            kernelOptions: [], required: false))
        var flowtablesMissing = false
        for probe in FeatureProbe.all {
            let isRequired = required.contains(probe.name)
            if flowtablesMissing && probe.batch.changes.contains(where: { if case .addFlowtable = $0 { true } else { false } }) {
                checks.append(Check(name: probe.name, status: isRequired ? .missing : .warning,
                                    detail: "cannot be tried without flowtables", kernelOptions: probe.kernelOptions,
                                    required: isRequired))
                continue
            }
            if let error = probe.run(on: edges.backend) {
                if probe.name == FeatureProbe.flowtable.name { flowtablesMissing = true }
                checks.append(Check(name: probe.name, status: isRequired ? .missing : .warning,
                                    detail: "kernel refused it: \(oneLine(error))",
                                    kernelOptions: probe.kernelOptions, required: isRequired))
            } else {
                checks.append(Check(name: probe.name, status: .ok, detail: "supported", kernelOptions: [],
                                    required: isRequired))
            }
        }

        do {
            let summary = try edges.conntrack.summary()
            checks.append(Check(name: "conntrack netlink (ctnetlink)", status: .ok,
                                detail: "\(summary.entries) entries, \(summary.offloaded) offloaded",
                                kernelOptions: [], required: true))
            if let count = summary.count, let max = summary.max {
                let fill = summary.fill ?? 0
                checks.append(Check(
                    name: "conntrack capacity", status: summary.isNearlyFull ? .warning : .ok,
                    detail: "\(count) of nf_conntrack_max \(max) in use (\(String(format: "%.1f", fill * 100))%)",
                    kernelOptions: [], required: false))
            } else {
                checks.append(Check(name: "conntrack capacity", status: .warning,
                                    detail: "nf_conntrack_count/max unreadable (conntrack loads with the first offload rule)",
                                    kernelOptions: ["CONFIG_NF_CONNTRACK"], required: false))
            }
        } catch {
            checks.append(Check(name: "conntrack netlink (ctnetlink)", status: .missing,
                                detail: oneLine(error), kernelOptions: ["CONFIG_NF_CT_NETLINK"], required: true))
        }

        do {
            let later = try edges.backend.forwardChains().filter {
                $0.table != FlowctlNames.table && $0.priority >= FlowctlNames.forwardPriority
            }
            checks.append(Check(
                name: "forward chain order", status: later.isEmpty ? .ok : .warning,
                detail: later.isEmpty
                    ? "flowctl's forward chain (priority \(FlowctlNames.forwardPriority)) runs after every other"
                    : "these run at or after flowctl's: " + later.map { "\($0.table) \($0.chain) (\($0.priority))" }.joined(separator: ", "),
                kernelOptions: [], required: false))
        } catch {
            checks.append(Check(name: "forward chain order", status: .warning, detail: oneLine(error),
                                kernelOptions: [], required: false))
        }

        do {
            let topology = try edges.topology.snapshot()
            let intent = (try? state.store.load()) ?? Intent()
            let plan = try? Planner().plan(intent: intent, topology: topology)
            let planned = plan?.devices.map(\.name) ?? []
            // Honest gain: a bridge nothing is routed through only switches.
            for bridge in plan?.bridges ?? [] {
                checks.append(Check(
                    name: "bridge \(bridge.name)", status: bridge.layer2Only == true ? .warning : .info,
                    detail: bridge.layer2Only == true
                        ? "layer 2 only: no address or route on it or its VLAN uppers; switched traffic never reaches the forward hook and gains nothing"
                        : "routed: traffic between its VMs and the uplinks (\(bridge.uplinks.joined(separator: ", "))) can take the fast path",
                    kernelOptions: [], required: false))
            }
            // Devices that could carry hardware offload: NICs and bonds, plus whatever is planned.
            let candidates = topology.links.filter {
                planned.contains($0.name) || $0.kind == .physical || $0.kind == .bond
            }
            for link in candidates {
                let state: String = switch link.hwTCOffload {
                case true?: "hw-tc-offload on: hardware offload possible"
                case false?: "hw-tc-offload off or unsupported: software fast path"
                case nil: "hw-tc-offload unknown (ethtool did not answer): software fast path"
                }
                checks.append(Check(name: "device \(link.name) (\(link.kind))", status: .info, detail: state,
                                    kernelOptions: [], required: false))
            }
        } catch {
            checks.append(Check(name: "links (rtnetlink)", status: .missing, detail: oneLine(error),
                                kernelOptions: [], required: true))
        }
        let usable = !checks.contains { $0.required && $0.status == .missing }
        return Report(usable: usable, checks: checks)
    }
}
