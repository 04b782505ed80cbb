import Foundation

/// Where and with what a benchmark ran: enough to reproduce it and to
/// tell two reports apart.
public struct BenchMetadata: Codable, Sendable, Hashable {
    public var environment: String
    public var kernel: String
    public var flowctlVersion: String
    /// The source tree's commit (and "-dirty" with uncommitted changes), when known.
    public var commit: String?
    public var cpus: Int
    public var date: String

    public init(environment: String, kernel: String, flowctlVersion: String, commit: String?, cpus: Int, date: String) {
        self.environment = environment
        self.kernel = kernel
        self.flowctlVersion = flowctlVersion
        self.commit = commit
        self.cpus = cpus
        self.date = date
    }

    /// This machine, now.
    public static func here(environment: String, flowctlVersion: String, commit: String?) -> BenchMetadata {
        BenchMetadata(environment: environment, kernel: kernelRelease(), flowctlVersion: flowctlVersion, commit: commit,
                      cpus: ProcessInfo.processInfo.activeProcessorCount,
                      date: ISO8601DateFormatter().string(from: Date()))
    }

    public static func kernelRelease() -> String {
        (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }
}

/// The JSON report: metadata, and per scenario its raw runs, the
/// summaries per mode and the verdicts. Read back by `--compare` and
/// `--markdown`, and by the lab re-run.
public struct BenchDocument: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var result: ScenarioResult
        public var summaries: [ModeSummary]
        public var verdicts: [String]
    }

    public var metadata: BenchMetadata
    public var scenarios: [Entry]

    public init(metadata: BenchMetadata, results: [ScenarioResult]) {
        self.metadata = metadata
        scenarios = results.map { Entry(result: $0, summaries: $0.summaries, verdicts: $0.verdicts) }
    }

    public var results: [ScenarioResult] { scenarios.map(\.result) }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func load(path: String) throws -> BenchDocument {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw BenchReport.ReadError(path: path, reason: "cannot read: \((error as NSError).localizedDescription)")
        }
        do { return try JSONDecoder().decode(BenchDocument.self, from: data) } catch {
            throw BenchReport.ReadError(path: path, reason: "not a flowctl bench report: \(error)")
        }
    }
}

public enum BenchReport {
    public struct ReadError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The columns a traffic kind is reported by: its primary metric first,
    /// then what means something for it.
    static func columns(_ metric: Metric) -> [(title: String, value: (ModeSummary) -> String)] {
        func spread(_ s: Spread?, _ format: (Double) -> String) -> String {
            guard let s else { return "-" }
            return "\(format(s.median)) (\(format(s.min))-\(format(s.max)))"
        }
        func median(_ s: Spread?, _ format: (Double) -> String) -> String { s.map { format($0.median) } ?? "-" }
        let micro = { (value: Double) in String(format: "%.0f", value) }
        var columns: [(title: String, value: (ModeSummary) -> String)] = [
            ("mode", { $0.label }), ("runs", { "\($0.runs)" }),
            ("\(metric.title) median (min-max)", { spread($0.primary, metric.format) }),
            ("ratio", { $0.ratioToSlow.map { String(format: "%.2fx", $0) } ?? "-" }),
        ]
        switch metric {
        case .packetsPerSecond:
            columns.append(("loss", { median($0.lossFraction, Format.percent) }))
        case .transactionsPerSecond:
            columns += [("p50 µs", { median($0.latencyP50Microseconds, micro) }),
                        ("p99 µs", { median($0.latencyP99Microseconds, micro) }),
                        ("p99.9 µs", { median($0.latencyP999Microseconds, micro) }),
                        ("p99 ratio", { $0.latencyP99RatioToSlow.map { String(format: "%.2fx", $0) } ?? "-" })]
        case .gigabitsPerSecond, .connectionsPerSecond:
            break
        }
        columns += [("CPU ns/\(metric.unit)", { median($0.cpuNanosecondsPerUnit, micro) }),
                    ("offloaded", { median($0.offloadedFraction, Format.percent) })]
        return columns
    }

    static func describe(_ traffic: Scenario.Traffic) -> String {
        var words = ["\(traffic.kind.rawValue), \(traffic.flows) flows"]
        if traffic.kind == .udp { words.append("\(traffic.size)-byte payload") }
        words.append("\(traffic.from) -> \(traffic.to)")
        if traffic.generator != .socket { words.append("generator \(traffic.generator.rawValue)") }
        if traffic.sink != .socket { words.append("sink \(traffic.sink.rawValue)") }
        return words.joined(separator: ", ")
    }

    /// Rows as indented columns, each as wide as its widest cell.
    static func aligned(_ rows: [[String]]) -> String {
        let widths = (rows.first ?? []).indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            "  " + row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }.joined()
    }

    /// The terminal table.
    public static func table(_ result: ScenarioResult, environment: String) -> String {
        var out = "\(result.scenario): \(result.description)\n"
        out += "  traffic: \(describe(result.traffic)); \(environment)\n"
        let columns = columns(result.primaryMetric)
        out += aligned([columns.map(\.title)] + result.summaries.map { summary in columns.map { $0.value(summary) } })
        for verdict in result.verdicts { out += "  \(verdict)\n" }
        return out
    }

    /// Markdown tables of a report, as the README shows them.
    public static func markdown(_ document: BenchDocument) -> String {
        let meta = document.metadata
        var out = "Kernel \(meta.kernel), \(meta.cpus) CPU\(meta.cpus == 1 ? "" : "s"), flowctl \(meta.flowctlVersion)"
            + (meta.commit.map { " (\($0))" } ?? "") + ", \(meta.date); \(meta.environment).\n"
        for result in document.results {
            out += "\n**\(result.scenario)**: \(result.description) (\(describe(result.traffic)); "
                + "medians of \(result.summaries.map(\.runs).max() ?? 0) interleaved runs, min-max in brackets)\n\n"
            let columns = columns(result.primaryMetric)
            out += "| " + columns.map(\.title).joined(separator: " | ") + " |\n"
            out += "|" + columns.map { _ in "---" }.joined(separator: "|") + "|\n"
            for summary in result.summaries {
                out += "| " + columns.map { $0.value(summary) }.joined(separator: " | ") + " |\n"
            }
            if !result.verdicts.isEmpty {
                out += "\n" + result.verdicts.map { "- \($0)\n" }.joined()
            }
        }
        return out
    }

    /// Two reports side by side: per scenario and mode, the primary
    /// metric's median and spread before and after, the change, and
    /// whether it is beyond the spread of both.
    public static func compare(old: BenchDocument, new: BenchDocument) -> String {
        var out = "old: \(old.metadata.flowctlVersion) \(old.metadata.commit ?? "?") on \(old.metadata.kernel), \(old.metadata.date)\n"
        out += "new: \(new.metadata.flowctlVersion) \(new.metadata.commit ?? "?") on \(new.metadata.kernel), \(new.metadata.date)\n"
        let before = Dictionary(old.results.map { ($0.scenario, $0) }, uniquingKeysWith: { first, _ in first })
        for result in new.results {
            let metric = result.primaryMetric
            out += "\n\(result.scenario) (\(metric.title)):\n"
            guard let previous = before[result.scenario] else {
                out += "  not in the old report\n"
                continue
            }
            guard previous.primaryMetric == metric else {
                out += "  the old report measured \(previous.primaryMetric.title): not comparable\n"
                continue
            }
            guard previous.traffic == result.traffic else {
                out += "  the traffic differs (old: \(describe(previous.traffic)); new: \(describe(result.traffic))): not comparable\n"
                continue
            }
            let oldSummaries = Dictionary(previous.summaries.map { ($0.mode, $0) }, uniquingKeysWith: { first, _ in first })
            var rows = [["mode", "old median (min-max)", "new median (min-max)", "change", "verdict"]]
            for summary in result.summaries {
                guard let now = summary.primary else { continue }
                let text = { (s: Spread) in "\(metric.format(s.median)) (\(metric.format(s.min))-\(metric.format(s.max)))" }
                guard let then = oldSummaries[summary.mode]?.primary else {
                    rows.append([summary.label, "-", text(now), "-", "new mode"])
                    continue
                }
                let change = then.median > 0 ? (now.median / then.median - 1) * 100 : 0
                let verdict = now.overlaps(then) ? "within the spread" : now.median > then.median ? "faster" : "SLOWER"
                rows.append([summary.label, text(then), text(now), String(format: "%+.1f%%", change), verdict])
            }
            out += aligned(rows)
        }
        let gone = Set(before.keys).subtracting(new.results.map(\.scenario))
        for name in gone.sorted() { out += "\n\(name): not in the new report\n" }
        return out
    }
}
