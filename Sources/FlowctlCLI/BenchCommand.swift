import ArgumentParser
import FlowctlBench
import FlowctlCore
import FlowctlLinux
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run benchmark scenarios: the slow path, flowctl and other configurations, interleaved and repeated.",
        discussion: """
            Builds each scenario's topology (network namespaces for VMs and \
            containers), runs every mode in turn for each repetition with the \
            built-in generators, tears everything down (also on failure or \
            Ctrl-C), and reports each traffic kind by its own metric: a table, \
            JSON (with the kernel, version, commit, CPUs and every run), an SVG \
            chart per scenario and a summary chart. Runs on this kernel when it \
            has flowtables, otherwise inside the lab kernel (scripts/lab), and \
            says which.

            --compare OLD.json NEW.json prints the differences between two \
            reports per scenario and mode, with their spread; --markdown \
            REPORT.json prints a report's tables as the README shows them.
            """)

    @Argument(help: ArgumentHelp("Scenario files (Scenarios/*.toml), or reports with --compare/--markdown.", valueName: "file"))
    var files: [String]

    @Option(help: "Repetitions per mode (default: the scenario's).")
    var repetitions: Int?

    @Option(help: "Seconds per run (default: the scenario's).")
    var duration: Double?

    @Option(name: .customLong("output"), help: ArgumentHelp("Folder for the JSON report and the SVG charts.", valueName: "dir"))
    var output = "bench-results"

    @Flag(help: "Compare two JSON reports: OLD NEW.")
    var compare = false

    @Flag(help: "Print a JSON report's tables in Markdown.")
    var markdown = false

    @Flag(help: "Run on this kernel even without flowtables (the flowctl mode then fails).")
    var here = false

    @Flag(help: .hidden)
    var emitJSON = false

    func validate() throws {
        if let repetitions, repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        if compare && markdown { throw ValidationError("--compare and --markdown exclude each other") }
        if compare, files.count != 2 { throw ValidationError("--compare takes two reports: OLD.json NEW.json") }
        if markdown, files.count != 1 { throw ValidationError("--markdown takes one report") }
        if files.isEmpty { throw ValidationError("name at least one scenario file") }
    }

    func run() throws {
        try guarded {
            if compare {
                say(BenchReport.compare(old: try BenchDocument.load(path: files[0]), new: try BenchDocument.load(path: files[1])))
                return
            }
            if markdown {
                say(BenchReport.markdown(try BenchDocument.load(path: files[0])))
                return
            }
            let bench = Bench(scenarioPaths: files, repetitions: repetitions, duration: duration, here: here,
                              flowctl: Self.selfPath(), flowctlVersion: FlowctlCommand.configuration.version,
                              hasFlowtables: { FeatureProbe.flowtable.passes(on: NftablesBackend()) },
                              progress: { Runtime.standardError($0 + "\n") })
            let document = try bench.run()
            if emitJSON {
                say(String(decoding: try document.encoded(), as: UTF8.self))
                return
            }
            for result in document.results { say(BenchReport.table(result, environment: document.metadata.environment)) }
            say("report: " + (try Bench.write(document, to: output)).joined(separator: ", "))
        }
    }

    static func selfPath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
