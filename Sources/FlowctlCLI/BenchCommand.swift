import ArgumentParser
import FlowctlBench
import FlowctlCore
import FlowctlLinux
import FlowctlProcess
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmark scenarios: slow path against flowctl's fast path, interleaved and repeated.",
        discussion: """
            Builds each scenario's topology (network namespaces for VMs and \
            containers), runs every mode in turn for each repetition with the \
            built-in generators, tears everything down (also on failure or \
            Ctrl-C), and reports a table, JSON and an SVG chart per scenario. \
            Runs on this kernel when it has flowtables, otherwise inside the lab \
            kernel (scripts/lab), and says which.
            """)

    @Argument(help: "Scenario files (Scenarios/*.toml).")
    var scenarios: [String]

    @Option(help: "Repetitions per mode (default: the scenario's).")
    var repetitions: Int?

    @Option(help: "Seconds per run (default: the scenario's).")
    var duration: Double?

    @Option(name: .customLong("output"), help: ArgumentHelp("Folder for the JSON report and the SVG charts.", valueName: "dir"))
    var output = "bench-results"

    @Flag(help: "Run on this kernel even without flowtables (the flowctl mode then fails).")
    var here = false

    @Flag(help: .hidden)
    var emitJSON = false

    func validate() throws {
        if let repetitions, repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        try guarded {
            // Parse everything first: a bad file fails before anything is built.
            let loaded = try scenarios.map { path throws -> Scenario in try Scenario.load(path: path) }
            for scenario in loaded { _ = try TopologyPlan(scenario) }  // what the runner cannot build, before booting anything
            guard geteuid() == 0 else {
                throw KernelError(operation: "flowctl bench", errno: KernelError.EPERM,
                                  reason: "needs root (network namespaces, nftables)")
            }
            let environment: String
            if !here {
                if !FeatureProbe.flowtable.passes(on: NftablesBackend()) {
                    try runInLab(loaded)
                    return
                }
                environment = "host kernel \(kernelRelease()) (has flowtables)"
            } else {
                environment = ProcessInfo.processInfo.environment["FLOWCTL_BENCH_ENVIRONMENT"]
                    ?? "kernel \(kernelRelease())"
            }
            var results: [ScenarioResult] = []
            for scenario in loaded {
                let runner = try BenchRunner(scenario: scenario, options: .init(
                    flowctl: selfPath(), repetitions: repetitions, duration: duration,
                    progress: { Runtime.standardError($0 + "\n") }))
                let result = try runner.run()
                results.append(result)
                if !emitJSON { say(BenchReport.table(result, environment: environment)) }
            }
            if emitJSON {
                say(String(decoding: try BenchReport.json(results, environment: environment), as: UTF8.self))
            } else {
                try write(results, environment: environment)
            }
        }
    }

    /// Re-runs this command inside the lab kernel and writes its report here.
    func runInLab(_ loaded: [Scenario]) throws {
        guard let lab = labRunner() else {
            throw KernelError(operation: "flowctl bench", errno: KernelError.EOPNOTSUPP,
                              reason: "this kernel has no flowtables and the lab runner (scripts/lab) was not found",
                              hint: "set FLOWCTL_LAB_RUNNER, or run from the repository")
        }
        Runtime.standardError("this kernel (\(kernelRelease())) has no flowtables: running in the lab kernel (\(lab))\n")
        var arguments = [lab, "--timeout", "3000", "--", selfPath(), "bench", "--here", "--emit-json"]
        if let repetitions { arguments += ["--repetitions", "\(repetitions)"] }
        if let duration { arguments += ["--duration", "\(duration)"] }
        arguments += scenarios.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        // The lab's progress goes on to our stderr; its stdout is the JSON.
        let rerun = try Subprocess.run(arguments, environment: [
            "FLOWCTL_BENCH_ENVIRONMENT": "lab kernel (User-Mode Linux 6.12, one CPU), host \(kernelRelease()) has no flowtables",
        ], standardError: .inherit)
        guard rerun.succeeded else { throw ExitCode(rerun.status) }
        let data = Data(rerun.stdout.utf8)
        struct Document: Decodable {
            struct Entry: Decodable { var result: ScenarioResult }
            var environment: String
            var scenarios: [Entry]
        }
        let document = try JSONDecoder().decode(Document.self, from: data)
        for entry in document.scenarios { say(BenchReport.table(entry.result, environment: document.environment)) }
        try write(document.scenarios.map(\.result), environment: document.environment)
    }

    func write(_ results: [ScenarioResult], environment: String) throws {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let json = "\(output)/bench-\(stamp).json"
        try BenchReport.json(results, environment: environment).write(to: URL(fileURLWithPath: json))
        var written = [json]
        for result in results {
            let svg = "\(output)/\(result.scenario)-\(stamp).svg"
            try BenchReport.svg(result).write(toFile: svg, atomically: true, encoding: .utf8)
            written.append(svg)
        }
        say("report: " + written.joined(separator: ", "))
    }

    func selfPath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func labRunner() -> String? {
        if let path = ProcessInfo.processInfo.environment["FLOWCTL_LAB_RUNNER"] { return path }
        // .build/<config>/flowctl -> repository root -> scripts/lab
        var dir = URL(fileURLWithPath: selfPath()).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("scripts/lab").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    func kernelRelease() -> String {
        (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }
}
