import FlowctlCore
import FlowctlProcess
import Foundation

/// `flowctl bench` as a library: loads and checks the scenarios, runs them
/// here when this kernel has flowtables (or when told to), otherwise again
/// inside the lab kernel, whose JSON report comes back on its stdout; and
/// writes the report, the charts and the summary chart.
public struct Bench: Sendable {
    public var scenarioPaths: [String]
    public var repetitions: Int?
    public var duration: Double?
    /// Run on this kernel whatever it has (the lab re-run sets it).
    public var here: Bool
    /// The flowctl executable (generators, `enable`, the lab re-run).
    public var flowctl: String
    public var flowctlVersion: String
    public var progress: @Sendable (String) -> Void
    /// Whether this kernel has nftables flowtables (FlowctlLinux's probe).
    public var hasFlowtables: @Sendable () -> Bool

    public init(scenarioPaths: [String], repetitions: Int?, duration: Double?, here: Bool, flowctl: String,
                flowctlVersion: String, hasFlowtables: @escaping @Sendable () -> Bool,
                progress: @escaping @Sendable (String) -> Void) {
        self.hasFlowtables = hasFlowtables
        self.scenarioPaths = scenarioPaths
        self.repetitions = repetitions
        self.duration = duration
        self.here = here
        self.flowctl = flowctl
        self.flowctlVersion = flowctlVersion
        self.progress = progress
    }

    /// Environment variable the lab re-run describes its environment with.
    static let environmentVariable = "FLOWCTL_BENCH_ENVIRONMENT"

    /// Every scenario parsed and its topology planned: a bad file fails
    /// before anything is built or booted.
    public func load() throws -> [Scenario] {
        let loaded = try scenarioPaths.map { path throws -> Scenario in try Scenario.load(path: path) }
        for scenario in loaded { _ = try TopologyPlan(scenario) }
        return loaded
    }

    public func run() throws -> BenchDocument {
        let loaded = try load()
        guard geteuid() == 0 else {
            throw KernelError(operation: "flowctl bench", errno: KernelError.EPERM,
                              reason: "needs root (network namespaces, nftables)")
        }
        let environment: String
        if here {
            environment = ProcessInfo.processInfo.environment[Self.environmentVariable]
                ?? "kernel \(BenchMetadata.kernelRelease())"
        } else if hasFlowtables() {
            environment = "host kernel \(BenchMetadata.kernelRelease()) (has flowtables)"
        } else {
            return try runInLab()
        }
        var results: [ScenarioResult] = []
        for scenario in loaded {
            let runner = try BenchRunner(scenario: scenario, options: .init(
                flowctl: flowctl, repetitions: repetitions, duration: duration, progress: progress))
            results.append(try runner.run())
        }
        return BenchDocument(metadata: .here(environment: environment, flowctlVersion: flowctlVersion,
                                             commit: Self.commit(of: flowctl)),
                             results: results)
    }

    /// The same bench inside the lab kernel; its stdout is the JSON report.
    func runInLab() throws -> BenchDocument {
        guard let lab = Self.labRunner(near: flowctl) else {
            throw KernelError(operation: "flowctl bench", errno: KernelError.EOPNOTSUPP,
                              reason: "this kernel has no flowtables and the lab runner (scripts/lab) was not found",
                              hint: "set FLOWCTL_LAB_RUNNER, or run from the repository")
        }
        progress("this kernel (\(BenchMetadata.kernelRelease())) has no flowtables: running in the lab kernel (\(lab))")
        var arguments = [lab, "--timeout", "5400", "--", flowctl, "bench", "--here", "--emit-json"]
        if let repetitions { arguments += ["--repetitions", "\(repetitions)"] }
        if let duration { arguments += ["--duration", "\(duration)"] }
        arguments += scenarioPaths.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        // The lab's progress goes on to our stderr; its stdout is the JSON.
        let rerun = try Subprocess.run(arguments, environment: [
            Self.environmentVariable: "lab kernel (User-Mode Linux, one CPU) on host \(BenchMetadata.kernelRelease()), which has no flowtables",
        ], standardError: .inherit)
        guard rerun.succeeded else {
            throw BenchRunner.RunError.step("flowctl bench in the lab kernel", "exit status \(rerun.status) (its messages are above)")
        }
        do { return try JSONDecoder().decode(BenchDocument.self, from: Data(rerun.stdout.utf8)) } catch {
            throw BenchRunner.RunError.step("flowctl bench in the lab kernel", "its report is not readable: \(error)")
        }
    }

    /// Writes the JSON report, a chart per scenario and the summary chart
    /// into `folder`; returns the paths.
    public static func write(_ document: BenchDocument, to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let json = "\(folder)/bench-\(stamp).json"
        try document.encoded().write(to: URL(fileURLWithPath: json))
        var written = [json]
        for result in document.results {
            let svg = "\(folder)/\(result.scenario)-\(stamp).svg"
            try BenchChart.scenario(result).write(toFile: svg, atomically: true, encoding: .utf8)
            written.append(svg)
        }
        let summary = "\(folder)/summary-\(stamp).svg"
        try BenchChart.summary(document.results).write(toFile: summary, atomically: true, encoding: .utf8)
        return written + [summary]
    }

    /// The repository the executable was built in (.build/<config>/flowctl), if any.
    static func repository(of executable: String) -> URL? {
        var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    static func labRunner(near executable: String) -> String? {
        if let path = ProcessInfo.processInfo.environment["FLOWCTL_LAB_RUNNER"] { return path }
        return repository(of: executable).map { $0.appendingPathComponent("scripts/lab").path }
            .flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil }
    }

    /// The commit the executable was built from, "-dirty" with uncommitted changes; nil outside a git tree.
    static func commit(of executable: String) -> String? {
        guard let repository = repository(of: executable)?.path,
              let head = try? Subprocess.run(["git", "-C", repository, "rev-parse", "--short", "HEAD"], standardError: .discard),
              head.succeeded else { return nil }
        let dirty = (try? Subprocess.run(["git", "-C", repository, "status", "--porcelain", "--untracked-files=no"],
                                         standardError: .discard))?.stdout.isEmpty == false
        return head.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + (dirty ? "-dirty" : "")
    }
}
