/// `flowctl doctor`: what this kernel and host support, each missing piece
/// named with the kernel option that provides it. Every nf_tables feature is
/// probed with throwaway objects in a batch the kernel checks and aborts
/// (FeatureProbe); nothing is created. Works on the edges, so the unit tier
/// runs it against the fakes.
public enum Doctor {
    public struct Check: Codable, Sendable, Hashable {
        public enum Status: String, Codable, Sendable { case ok, missing, warning, info }
        public var name: String
        public var status: Status
        public var detail: String
        /// Kernel options that provide the feature, when it is missing.
        public var kernelOptions: [String]
        /// flowctl cannot work without it.
        public var required: Bool

        public init(name: String, status: Status, detail: String, kernelOptions: [String] = [], required: Bool = false) {
            self.name = name
            self.status = status
            self.detail = detail
            self.kernelOptions = kernelOptions
            self.required = required
        }
    }

    public struct Report: Codable, Sendable {
        public var usable: Bool
        public var checks: [Check]
    }

    /// What doctor reads besides the edges.
    public struct Host: Sendable {
        public var isRoot: Bool
        /// A sysctl's value by its /proc/sys path below net/ ("ipv4/nexthop_compat_mode"), nil if unreadable.
        public var netSysctl: @Sendable (String) -> String?

        public init(isRoot: Bool, netSysctl: @escaping @Sendable (String) -> String?) {
            self.isRoot = isRoot
            self.netSysctl = netSysctl
        }
    }

    static let required: Set<String> = [FeatureProbe.nfTables.name, FeatureProbe.flowtable.name,
                                        FeatureProbe.flowOffload.name, FeatureProbe.tableComment.name]

    /// An error in one line.
    static func line(_ error: any Error) -> String { "\(error)".split(separator: "\n").joined(separator: "; ") }

    public static func diagnose(topology: any TopologySource, backend: any RulesetBackend,
                                conntrack: any ConntrackSource, intent: Intent, host: Host) -> Report {
        var checks: [Check] = []
        checks.append(Check(name: "privileges", status: host.isRoot ? .ok : .warning,
                            detail: host.isRoot ? "running as root" : "not root: probes need CAP_NET_ADMIN and may fail for that reason alone"))
        var flowtablesMissing = false
        for probe in FeatureProbe.all {
            let isRequired = required.contains(probe.name)
            if flowtablesMissing && probe.batch.changes.contains(where: { if case .addFlowtable = $0 { true } else { false } }) {
                checks.append(Check(name: probe.name, status: isRequired ? .missing : .warning,
                                    detail: "cannot be tried without flowtables", kernelOptions: probe.kernelOptions,
                                    required: isRequired))
                continue
            }
            if let error = probe.run(on: backend) {
                if probe.name == FeatureProbe.flowtable.name { flowtablesMissing = true }
                checks.append(Check(name: probe.name, status: isRequired ? .missing : .warning,
                                    detail: "kernel refused it: \(line(error))", kernelOptions: probe.kernelOptions,
                                    required: isRequired))
            } else {
                checks.append(Check(name: probe.name, status: .ok, detail: "supported", required: isRequired))
            }
        }

        do {
            let summary = try conntrack.summary()
            checks.append(Check(name: "conntrack netlink (ctnetlink)", status: .ok,
                                detail: "\(summary.entries) entries, \(summary.offloaded) offloaded", required: true))
            if let count = summary.count, let max = summary.max {
                let percent = Int(((summary.fill ?? 0) * 1000).rounded())
                checks.append(Check(name: "conntrack capacity", status: summary.isNearlyFull ? .warning : .ok,
                                    detail: "\(count) of nf_conntrack_max \(max) in use (\(percent / 10).\(percent % 10)%)"))
            } else {
                checks.append(Check(name: "conntrack capacity", status: .warning,
                                    detail: "nf_conntrack_count/max unreadable (conntrack loads with the first offload rule)",
                                    kernelOptions: ["CONFIG_NF_CONNTRACK"]))
            }
        } catch {
            checks.append(Check(name: "conntrack netlink (ctnetlink)", status: .missing, detail: line(error),
                                kernelOptions: ["CONFIG_NF_CT_NETLINK"], required: true))
        }

        do {
            let later = try backend.forwardChains().filter {
                $0.table != FlowctlNames.table && $0.priority >= FlowctlNames.forwardPriority
            }
            checks.append(Check(
                name: "forward chain order", status: later.isEmpty ? .ok : .warning,
                detail: later.isEmpty
                    ? "flowctl's forward chain (priority \(FlowctlNames.forwardPriority)) runs after every other"
                    : "these run at or after flowctl's: " + later.map { "\($0.table) \($0.chain) (\($0.priority))" }.joined(separator: ", ")))
        } catch {
            checks.append(Check(name: "forward chain order", status: .warning, detail: line(error)))
        }

        // Routes through nexthop objects carry their devices only in compat mode.
        if host.netSysctl("ipv4/nexthop_compat_mode") == "0" {
            checks.append(Check(name: "nexthop objects", status: .warning,
                                detail: "net.ipv4.nexthop_compat_mode is 0: routes through nexthop objects do not name their devices, so flowctl does not see those devices as uplinks (name them with --uplink, or set it to 1)"))
        }

        do {
            let snapshot = try topology.snapshot()
            let plan = try? Planner().plan(intent: intent, topology: snapshot)
            let planned = Set(plan?.devices.map(\.name) ?? [])
            // Honest gain: a bridge nothing is routed through only switches.
            for bridge in plan?.bridges ?? [] {
                checks.append(Check(
                    name: "bridge \(bridge.name)", status: bridge.layer2Only == true ? .warning : .info,
                    detail: bridge.layer2Only == true
                        ? "layer 2 only: no address or route on it or its VLAN uppers; switched traffic never reaches the forward hook and gains nothing"
                        : "routed: traffic between its VMs and the uplinks (\(bridge.uplinks.joined(separator: ", "))) can take the fast path"))
            }
            // Devices that could carry hardware offload: NICs and bonds, plus whatever is planned.
            for link in snapshot.links where planned.contains(link.name) || link.kind == .physical || link.kind == .bond {
                let state: String = switch link.hwTCOffload {
                case true?: "hw-tc-offload on: hardware offload possible"
                case false?: "hw-tc-offload off or unsupported: software fast path"
                case nil: "hw-tc-offload unknown (ethtool did not answer): software fast path"
                }
                checks.append(Check(name: "device \(link.name) (\(link.kind))", status: .info, detail: state))
            }
        } catch {
            checks.append(Check(name: "links (rtnetlink)", status: .missing, detail: line(error), required: true))
        }
        return Report(usable: !checks.contains { $0.required && $0.status == .missing }, checks: checks)
    }
}
