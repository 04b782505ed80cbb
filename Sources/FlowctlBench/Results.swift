import FlowctlTraffic
import Foundation

/// The figure a traffic kind is judged by: what its users feel.
public enum Metric: String, Codable, Sendable, Hashable, CaseIterable {
    case packetsPerSecond
    case gigabitsPerSecond
    case connectionsPerSecond
    case transactionsPerSecond

    public static func primary(for kind: Scenario.TrafficKind) -> Metric {
        switch kind {
        case .udp: .packetsPerSecond
        case .tcpBulk: .gigabitsPerSecond
        case .tcpCRR: .connectionsPerSecond
        case .rr: .transactionsPerSecond
        }
    }

    public var title: String {
        switch self {
        case .packetsPerSecond: "packets/s"
        case .gigabitsPerSecond: "Gbit/s"
        case .connectionsPerSecond: "connections/s"
        case .transactionsPerSecond: "transactions/s"
        }
    }

    /// What the CPU cost is counted per.
    public var unit: String {
        switch self {
        case .packetsPerSecond: "pkt"
        case .gigabitsPerSecond: "KiB"
        case .connectionsPerSecond: "conn"
        case .transactionsPerSecond: "trans"
        }
    }

    public func format(_ value: Double) -> String {
        self == .gigabitsPerSecond ? String(format: "%.2f", value) : Format.rate(value)
    }
}

/// One run of one mode, from the generators' own results.
public struct RunResult: Codable, Sendable, Hashable {
    public var mode: String
    public var packetsSent: Double
    public var packetsReceived: Double
    public var bytesReceived: Double
    public var seconds: Double
    /// Connections (tcp-crr) or transactions (rr) completed per second.
    public var transactionsPerSecond: Double?
    public var latencyP50Microseconds: Double?
    public var latencyP99Microseconds: Double?
    public var latencyP999Microseconds: Double?
    /// Busy CPU seconds of the whole machine during the run.
    public var cpuSeconds: Double
    public var offloadedFraction: Double?

    public init(mode: String, packetsSent: Double, packetsReceived: Double, bytesReceived: Double, seconds: Double,
                cpuSeconds: Double) {
        self.mode = mode
        self.packetsSent = packetsSent
        self.packetsReceived = packetsReceived
        self.bytesReceived = bytesReceived
        self.seconds = seconds
        self.cpuSeconds = cpuSeconds
    }

    public var packetsPerSecond: Double { seconds > 0 ? packetsReceived / seconds : 0 }
    public var gigabitsPerSecond: Double { seconds > 0 ? bytesReceived * 8 / seconds / 1e9 : 0 }
    public var lossFraction: Double { packetsSent > 0 ? max(0, packetsSent - packetsReceived) / packetsSent : 0 }

    public func value(_ metric: Metric) -> Double? {
        switch metric {
        case .packetsPerSecond: packetsPerSecond
        case .gigabitsPerSecond: gigabitsPerSecond
        case .connectionsPerSecond, .transactionsPerSecond: transactionsPerSecond
        }
    }

    /// Busy CPU nanoseconds per unit of the metric (packet, KiB, connection, transaction).
    public func cpuNanoseconds(per metric: Metric) -> Double? {
        let units: Double = switch metric {
        case .packetsPerSecond: packetsReceived
        case .gigabitsPerSecond: bytesReceived / 1024
        case .connectionsPerSecond, .transactionsPerSecond: (transactionsPerSecond ?? 0) * seconds
        }
        return units > 0 && cpuSeconds > 0 ? cpuSeconds * 1e9 / units : nil
    }

    public enum ParseError: Error, CustomStringConvertible {
        case notJSON(String, String)
        case inconsistent(String)
        public var description: String {
            switch self {
            case .notJSON(let what, let text): "\(what): not its JSON result: \(text.prefix(200))"
            case .inconsistent(let why): "inconsistent generator results: \(why)"
            }
        }
    }

    /// The generator's JSON line (the last line that is an object) as its own result type.
    static func decode<T: Decodable>(_ type: T.Type, _ text: String, what: String) throws -> T {
        let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }).map(String.init) ?? text
        do { return try JSONDecoder().decode(T.self, from: Data(line.utf8)) } catch {
            throw ParseError.notJSON(what, text)
        }
    }

    /// Figures of the sending side, summed over several senders (a group
    /// of guests): counts added, the longest duration, the worst latency.
    struct Sent {
        var packets = 0.0, bytes = 0.0, transactions = 0.0, seconds = 0.0
        var p50: Double?, p99: Double?, p999: Double?

        mutating func add(_ other: Sent) {
            packets += other.packets
            bytes += other.bytes
            transactions += other.transactions
            seconds = max(seconds, other.seconds)
            p50 = [p50, other.p50].compactMap { $0 }.max()
            p99 = [p99, other.p99].compactMap { $0 }.max()
            p999 = [p999, other.p999].compactMap { $0 }.max()
        }
    }

    static func sent(_ text: String, traffic: Scenario.Traffic) throws -> Sent {
        switch (traffic.kind, traffic.generator) {
        case (.udp, .socket):
            let r = try decode(UDPSendResult.self, text, what: "udp-send")
            return Sent(packets: Double(r.packets), bytes: Double(r.bytes), seconds: r.duration)
        case (.udp, _):
            let r = try decode(PktgenSender.Result.self, text, what: "pktgen")
            return Sent(packets: Double(r.packets), bytes: Double(r.bytes), seconds: r.duration)
        case (.tcpBulk, _):
            let r = try decode(TCPSendResult.self, text, what: "tcp-send")
            return Sent(bytes: Double(r.bytes), seconds: r.duration)
        case (.tcpCRR, _), (.rr, _):
            let r = try decode(TransactionResult.self, text, what: traffic.kind == .rr ? "rr-client" : "crr-client")
            return Sent(transactions: Double(r.transactions), seconds: r.duration, p50: r.latency.p50Microseconds,
                        p99: r.latency.p99Microseconds, p999: r.latency.p999Microseconds)
        }
    }

    /// Combines the senders' and the sink's results and checks them against
    /// each other: nothing received that was not sent.
    public static func from(senders: [String], sink: String, traffic: Scenario.Traffic) throws -> RunResult {
        var sent = Sent()
        for text in senders { sent.add(try Self.sent(text, traffic: traffic)) }
        var result = RunResult(mode: "", packetsSent: sent.packets, packetsReceived: 0, bytesReceived: 0,
                               seconds: sent.seconds, cpuSeconds: 0)
        switch traffic.kind {
        case .udp:
            if traffic.sink == .drop {
                let r = try decode(DropSink.Result.self, sink, what: "drop-sink")
                result.packetsReceived = Double(r.packets)
                result.bytesReceived = Double(r.bytes)
            } else {
                let r = try decode(UDPSinkResult.self, sink, what: "udp-sink")
                result.packetsReceived = Double(r.packets)
                result.bytesReceived = Double(r.bytes)
                if r.activeSeconds > 0 { result.seconds = r.activeSeconds }
            }
            if result.packetsReceived > result.packetsSent {
                throw ParseError.inconsistent("received \(Int(result.packetsReceived)) UDP packets but sent \(Int(result.packetsSent))")
            }
        case .tcpBulk:
            let r = try decode(TCPSinkResult.self, sink, what: "tcp-sink")
            result.bytesReceived = Double(r.bytes)
            if r.activeSeconds > 0 { result.seconds = r.activeSeconds }
            if result.bytesReceived > sent.bytes {
                throw ParseError.inconsistent("received \(Int(result.bytesReceived)) TCP bytes but sent \(Int(sent.bytes))")
            }
        case .tcpCRR, .rr:
            let r = try decode(ServerResult.self, sink, what: traffic.kind == .rr ? "rr-server" : "crr-server")
            if sent.transactions > Double(r.transactions) {
                throw ParseError.inconsistent("the client counted \(Int(sent.transactions)) transactions, the server answered \(r.transactions)")
            }
            result.transactionsPerSecond = sent.seconds > 0 ? sent.transactions / sent.seconds : 0
            result.latencyP50Microseconds = sent.p50
            result.latencyP99Microseconds = sent.p99
            result.latencyP999Microseconds = sent.p999
        }
        return result
    }
}

/// Min, median and max of one figure over the repetitions of a mode.
public struct Spread: Codable, Sendable, Hashable {
    public var min: Double
    public var median: Double
    public var max: Double
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        min = sorted.first!
        max = sorted.last!
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// Whether the two ranges share any value: a difference inside the noise.
    public func overlaps(_ other: Spread) -> Bool { min <= other.max && other.min <= max }
}

/// One mode's runs of a scenario, by the traffic kind's own figures; a
/// figure that means nothing for the kind is absent (nil), not zero.
public struct ModeSummary: Codable, Sendable, Hashable {
    public var mode: String
    /// Short name for tables and charts (an nft file's name without folder and suffix).
    public var label: String
    public var runs: Int
    public var primaryMetric: Metric
    public var packetsPerSecond: Spread?
    public var gigabitsPerSecond: Spread?
    public var connectionsPerSecond: Spread?
    public var transactionsPerSecond: Spread?
    public var latencyP50Microseconds: Spread?
    public var latencyP99Microseconds: Spread?
    public var latencyP999Microseconds: Spread?
    /// Busy CPU nanoseconds per unit of the primary metric (`primaryMetric.unit`).
    public var cpuNanosecondsPerUnit: Spread?
    public var lossFraction: Spread?
    public var offloadedFraction: Spread?
    /// Median of the primary metric over the slow path's median (higher is better).
    public var ratioToSlow: Double?
    /// rr: the slow path's median p99 latency over this mode's (higher is better).
    public var latencyP99RatioToSlow: Double?

    public var primary: Spread? {
        switch primaryMetric {
        case .packetsPerSecond: packetsPerSecond
        case .gigabitsPerSecond: gigabitsPerSecond
        case .connectionsPerSecond: connectionsPerSecond
        case .transactionsPerSecond: transactionsPerSecond
        }
    }

    public static func label(_ mode: String) -> String {
        guard mode.hasPrefix("nft:") else { return mode }
        let name = mode.split(separator: "/").last.map(String.init) ?? mode
        return name.hasSuffix(".nft") ? String(name.dropLast(4)) : name
    }
}

public struct ScenarioResult: Codable, Sendable {
    public var scenario: String
    public var description: String
    public var traffic: Scenario.Traffic
    public var runs: [RunResult]
    public var expect: Scenario.Expectation
    public var modes: [String]

    public init(scenario: String, description: String, traffic: Scenario.Traffic, runs: [RunResult],
                expect: Scenario.Expectation, modes: [String]) {
        self.scenario = scenario
        self.description = description
        self.traffic = traffic
        self.runs = runs
        self.expect = expect
        self.modes = modes
    }

    public var primaryMetric: Metric { Metric.primary(for: traffic.kind) }

    public var summaries: [ModeSummary] {
        let metric = primaryMetric
        let slowRuns = runs.filter { $0.mode == "slow" }
        let slow = Spread(slowRuns.compactMap { $0.value(metric) })?.median
        let slowP99 = Spread(slowRuns.compactMap(\.latencyP99Microseconds))?.median
        return modes.map { mode in
            let mine = runs.filter { $0.mode == mode }
            let primary = Spread(mine.compactMap { $0.value(metric) })
            var summary = ModeSummary(mode: mode, label: ModeSummary.label(mode), runs: mine.count, primaryMetric: metric)
            switch metric {
            case .packetsPerSecond:
                summary.packetsPerSecond = primary
                summary.lossFraction = Spread(mine.map(\.lossFraction))
            case .gigabitsPerSecond: summary.gigabitsPerSecond = primary
            case .connectionsPerSecond: summary.connectionsPerSecond = primary
            case .transactionsPerSecond:
                summary.transactionsPerSecond = primary
                summary.latencyP50Microseconds = Spread(mine.compactMap(\.latencyP50Microseconds))
                summary.latencyP99Microseconds = Spread(mine.compactMap(\.latencyP99Microseconds))
                summary.latencyP999Microseconds = Spread(mine.compactMap(\.latencyP999Microseconds))
                if let slowP99, let p99 = summary.latencyP99Microseconds?.median, p99 > 0 {
                    summary.latencyP99RatioToSlow = slowP99 / p99
                }
            }
            summary.cpuNanosecondsPerUnit = Spread(mine.compactMap { $0.cpuNanoseconds(per: metric) })
            summary.offloadedFraction = Spread(mine.compactMap(\.offloadedFraction))
            if let slow, slow > 0, let primary { summary.ratioToSlow = primary.median / slow }
            return summary
        }
    }

    /// The scenario's expectations, checked on the medians (reported, not enforced).
    public var verdicts: [String] {
        let summaries = summaries
        let metric = primaryMetric.title
        var lines: [String] = []
        guard let ours = summaries.first(where: { $0.mode == "flowctl" }), let mine = ours.primary?.median else {
            return lines
        }
        if let ratio = ours.ratioToSlow {
            let wanted = expect.minRatio ?? 1.0
            lines.append(String(format: "flowctl / slow %@ = %.2f (expected >= %.2f): %@", metric, ratio, wanted,
                                ratio >= wanted ? "met" : "NOT met"))
        }
        for other in summaries where other.mode.hasPrefix("nft:") {
            guard let theirs = other.primary?.median, theirs > 0 else { continue }
            let ratio = mine / theirs
            let wanted = expect.minRatioTo[other.mode] ?? 1.0
            lines.append(String(format: "flowctl / %@ %@ = %.3f (expected >= %.2f): %@", other.label, metric, ratio,
                                wanted, ratio >= wanted ? "met" : "NOT met"))
        }
        if let wanted = expect.minOffloadedFraction, let offloaded = ours.offloadedFraction?.median {
            lines.append(String(format: "flowctl offloaded %.1f%% of the flows (expected >= %.1f%%): %@", offloaded * 100,
                                wanted * 100, offloaded >= wanted ? "met" : "NOT met"))
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
