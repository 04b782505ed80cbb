import ArgumentParser
import FlowctlCore
import FlowctlLinux
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

    func run() throws {
        try guarded {
            let edges = Runtime.makeEdges()
            let report = Doctor.diagnose(topology: edges.topology, backend: edges.backend, conntrack: edges.conntrack,
                                         intent: (try? state.store.load()) ?? Intent(), host: .linux)
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
}
