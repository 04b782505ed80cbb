import Foundation

/// One run of one mode.
public struct RunResult: Codable, Sendable, Hashable {
    public var mode: String
    public var packetsSent: Double
    public var packetsReceived: Double
    public var bytesReceived: Double
    public var seconds: Double
    /// Transactions per second for tcp-crr and rr; nil otherwise.
    public var transactionsPerSecond: Double?
    public var latencyP50Microseconds: Double?
    public var latencyP99Microseconds: Double?
    /// Busy CPU seconds of the whole machine during the run.
    public var cpuSeconds: Double
    public var offloadedFraction: Double?

    public var packetsPerSecond: Double { seconds > 0 ? packetsReceived / seconds : 0 }
    public var gigabitsPerSecond: Double { seconds > 0 ? bytesReceived * 8 / seconds / 1e9 : 0 }
    public var lossFraction: Double { packetsSent > 0 ? max(0, packetsSent - packetsReceived) / packetsSent : 0 }
    public var cpuNanosecondsPerPacket: Double? {
        packetsReceived > 0 && cpuSeconds > 0 ? cpuSeconds * 1e9 / packetsReceived : nil
    }

    enum ParseError: Error, CustomStringConvertible {
        case notJSON(String)
        case inconsistent(String)
        var description: String {
            switch self {
            case .notJSON(let text): "generator output is not a JSON object: \(text.prefix(200))"
            case .inconsistent(let why): "inconsistent generator results: \(why)"
            }
        }
    }

    static func object(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }).map(String.init) ?? text
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ParseError.notJSON(text)
        }
        return object
    }

    static func number(_ object: [String: Any], _ keys: [String]) -> Double? {
        for key in keys {
            if let value = object[key] as? Double { return value }
            if let value = object[key] as? Int { return Double(value) }
        }
        return nil
    }

    /// Several senders' results as one: counts summed, the longest duration.
    static func combine(_ outputs: [String]) throws -> String {
        guard outputs.count > 1 else { return outputs.first ?? "{}" }
        var total: [String: Double] = [:]
        for output in outputs {
            for (key, value) in try object(output) {
                guard let number = (value as? Double) ?? (value as? Int).map(Double.init) else { continue }
                if ["duration", "seconds", "durationSeconds"].contains(key) {
                    total[key] = max(total[key] ?? 0, number)
                } else {
                    total[key, default: 0] += number
                }
            }
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: total), as: UTF8.self)
    }

    /// Combines the sender's and the sink's JSON results and checks them
    /// against each other: nothing received that was not sent.
    static func from(sender: String, sink: String, kind: Scenario.TrafficKind) throws -> RunResult {
        let sent = try object(sender), received = try object(sink)
        if kind == .tcpCRR || kind == .rr, let done = number(sent, ["transactions"]),
           let answered = number(received, ["transactions"]), done > answered {
            throw ParseError.inconsistent("the client counted \(Int(done)) transactions, the server answered \(Int(answered))")
        }
        let packetsSent = number(sent, ["packets", "packetsSent", "sent", "transactions"]) ?? 0
        let packetsReceived = number(received, ["packets", "packetsReceived", "received", "transactions"]) ?? 0
        let bytes = number(received, ["bytes", "bytesReceived"]) ?? 0
        let seconds = number(received, ["activeSeconds", "duration", "seconds", "durationSeconds"])
            ?? number(sent, ["duration", "seconds", "durationSeconds"]) ?? 0
        if kind == .udp, packetsReceived > packetsSent {
            throw ParseError.inconsistent("received \(Int(packetsReceived)) UDP packets but sent \(Int(packetsSent))")
        }
        var result = RunResult(mode: "", packetsSent: packetsSent, packetsReceived: packetsReceived,
                               bytesReceived: bytes, seconds: seconds, cpuSeconds: 0)
        if kind == .tcpCRR || kind == .rr {
            result.transactionsPerSecond = number(sent, ["transactionsPerSecond", "tps"])
            result.latencyP50Microseconds = number(sent, ["p50Microseconds", "p50"])
            result.latencyP99Microseconds = number(sent, ["p99Microseconds", "p99"])
        }
        return result
    }
}

/// Min, median and max of one figure over the repetitions of a mode.
public struct Spread: Codable, Sendable, Hashable {
    public var min: Double
    public var median: Double
    public var max: Double
    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        min = sorted.first!
        max = sorted.last!
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

public struct ModeSummary: Codable, Sendable, Hashable {
    public var mode: String
    public var runs: Int
    public var packetsPerSecond: Spread?
    public var gigabitsPerSecond: Spread?
    public var cpuNanosecondsPerPacket: Spread?
    public var lossFraction: Spread?
    public var offloadedFraction: Spread?
    public var transactionsPerSecond: Spread?
    public var latencyP50Microseconds: Spread?
    public var latencyP99Microseconds: Spread?
    /// Median packets/s over the slow path's median.
    public var ratioToSlow: Double?
}

public struct ScenarioResult: Codable, Sendable {
    public var scenario: String
    public var description: String
    public var traffic: Scenario.Traffic
    public var runs: [RunResult]
    public var expect: Scenario.Expectation
    public var modes: [String]

    public var summaries: [ModeSummary] {
        let slow = Spread(runs.filter { $0.mode == "slow" }.map(\.packetsPerSecond))?.median
        return modes.map { mode in
            let mine = runs.filter { $0.mode == mode }
            let pps = Spread(mine.map(\.packetsPerSecond))
            return ModeSummary(
                mode: mode, runs: mine.count, packetsPerSecond: pps, gigabitsPerSecond: Spread(mine.map(\.gigabitsPerSecond)),
                cpuNanosecondsPerPacket: Spread(mine.compactMap(\.cpuNanosecondsPerPacket)),
                lossFraction: Spread(mine.map(\.lossFraction)), offloadedFraction: Spread(mine.compactMap(\.offloadedFraction)),
                transactionsPerSecond: Spread(mine.compactMap(\.transactionsPerSecond)),
                latencyP50Microseconds: Spread(mine.compactMap(\.latencyP50Microseconds)),
                latencyP99Microseconds: Spread(mine.compactMap(\.latencyP99Microseconds)),
                ratioToSlow: slow.flatMap { slow in pps.map { slow > 0 ? $0.median / slow : 0 } })
        }
    }

    /// The scenario's expectations, checked on the medians (reported, not enforced).
    public var verdicts: [String] {
        var lines: [String] = []
        if let wanted = expect.minRatio, let fast = summaries.first(where: { $0.mode == "flowctl" })?.ratioToSlow {
            lines.append(String(format: "flowctl / slow packets/s = %.2f (expected >= %.2f): %@", fast, wanted,
                                fast >= wanted ? "met" : "NOT met"))
        }
        if let best = summaries.filter({ $0.mode.hasPrefix("nft:") }).compactMap(\.packetsPerSecond?.median).max(),
           let ours = summaries.first(where: { $0.mode == "flowctl" })?.packetsPerSecond?.median, best > 0 {
            lines.append(String(format: "flowctl / hand-written flowtable = %.3f (goal: within 5%%)", ours / best))
        }
        return lines
    }
}

enum Format {
    static func rate(_ value: Double) -> String {
        value >= 1e6 ? String(format: "%.2fM", value / 1e6) : value >= 1e3 ? String(format: "%.1fk", value / 1e3)
            : String(format: "%.0f", value)
    }
    static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
}

public enum BenchReport {
    /// The terminal table.
    public static func table(_ result: ScenarioResult, environment: String) -> String {
        var out = "\(result.scenario): \(result.description)\n"
        out += "  traffic: \(result.traffic.kind.rawValue), \(result.traffic.flows) flows, \(result.traffic.size)-byte payload, \(result.traffic.from) -> \(result.traffic.to); \(environment)\n"
        let header = ["mode", "runs", "pps median (min-max)", "Gbit/s", "CPU ns/pkt", "loss", "offloaded", "ratio"]
        var rows: [[String]] = [header]
        for summary in result.summaries {
            func spread(_ s: Spread?, _ format: (Double) -> String) -> String {
                guard let s else { return "-" }
                return "\(format(s.median)) (\(format(s.min))-\(format(s.max)))"
            }
            rows.append([
                summary.mode, "\(summary.runs)", spread(summary.packetsPerSecond, Format.rate),
                summary.gigabitsPerSecond.map { String(format: "%.3f", $0.median) } ?? "-",
                summary.cpuNanosecondsPerPacket.map { String(format: "%.0f", $0.median) } ?? "-",
                summary.lossFraction.map { Format.percent($0.median) } ?? "-",
                summary.offloadedFraction.map { Format.percent($0.median) } ?? "-",
                summary.ratioToSlow.map { String(format: "%.2fx", $0) } ?? "-",
            ])
        }
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            out += "  " + row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        for verdict in result.verdicts { out += "  \(verdict)\n" }
        return out
    }

    public static func json(_ results: [ScenarioResult], environment: String) throws -> Data {
        struct Document: Encodable {
            var environment: String
            var scenarios: [Entry]
        }
        struct Entry: Encodable {
            var result: ScenarioResult
            var summaries: [ModeSummary]
            var verdicts: [String]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(Document(environment: environment, scenarios: results.map {
            Entry(result: $0, summaries: $0.summaries, verdicts: $0.verdicts)
        }))
    }

    /// A bar chart of median packets/s per mode, with min-max whiskers.
    public static func svg(_ result: ScenarioResult) -> String {
        let summaries = result.summaries.filter { $0.packetsPerSecond != nil }
        let width = 120 + summaries.count * 140, height = 360, base = 300.0, top = 50.0
        let peak = max(1, summaries.compactMap { $0.packetsPerSecond?.max }.max() ?? 1)
        func y(_ value: Double) -> Double { base - (base - top) * value / peak }
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="13">
            <text x="20" y="24" font-size="16">\(escape(result.scenario)): received packets/s (median, min-max)</text>
            <line x1="60" y1="\(base)" x2="\(width - 20)" y2="\(base)" stroke="#333"/>

            """
        let colors = ["#9e9e9e", "#2e7d32", "#1565c0", "#ef6c00"]
        for (index, summary) in summaries.enumerated() {
            guard let pps = summary.packetsPerSecond else { continue }
            let x = 90 + Double(index) * 140
            svg += String(format: "<rect x=\"%.0f\" y=\"%.1f\" width=\"80\" height=\"%.1f\" fill=\"%@\"/>\n",
                          x, y(pps.median), base - y(pps.median), colors[index % colors.count])
            svg += String(format: "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#000\"/>\n",
                          x + 40, y(pps.min), x + 40, y(pps.max))
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n",
                          x + 40, y(pps.max) - 6, Format.rate(pps.median)
                              + (summary.ratioToSlow.map { String(format: " (%.2fx)", $0) } ?? ""))
            svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%@</text>\n",
                          x + 40, base + 20, escape(summary.mode))
        }
        svg += "</svg>\n"
        return svg
    }
}
