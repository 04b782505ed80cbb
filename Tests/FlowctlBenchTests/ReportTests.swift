@testable import FlowctlBench
@testable import FlowctlTraffic
import FlowctlProcess
import Foundation
import Histogram
import XCTest

/// The report, fed with what the generators themselves print: each result
/// is encoded with the generator's own type and encoder.
final class ReportTests: XCTestCase {
    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try! encoder.encode(value), as: UTF8.self)
    }

    static func traffic(_ kind: Scenario.TrafficKind, generator: Scenario.Generator = .socket,
                        sink: Scenario.Sink = .socket) -> Scenario.Traffic {
        var traffic = Scenario.Traffic(kind: kind, from: "vm1", to: "ext", size: 18, flows: 4, duration: 2)
        traffic.generator = generator
        traffic.sink = sink
        return traffic
    }

    /// One run of `kind` whose primary figure scales with `scale`, printed by the generators.
    static func run(_ kind: Scenario.TrafficKind, mode: String, scale: Double, latency: UInt64 = 100_000) throws -> RunResult {
        var result: RunResult
        switch kind {
        case .udp:
            let sent = PktgenSender.Result(packets: Int(1_000_000 * scale), bytes: Int(64_000_000 * scale), duration: 2,
                                           mode: .inject, errors: 0, pktgenResult: "Result: OK", flows: 4)
            let dropped = DropSink.Result(packets: Int(1_000_000 * scale), bytes: Int(46_000_000 * scale), device: "eth0",
                                          hook: .ingress)
            result = try RunResult.from(senders: [json(sent)], sink: json(dropped),
                                        traffic: traffic(.udp, generator: .inject, sink: .drop))
        case .tcpBulk:
            let bytes = Int(500_000_000 * scale)
            let sent = TCPSendResult(bytes: bytes, streams: 2, failedStreams: 0, duration: 2, gigabitsPerSecond: 2, cpuSeconds: 1)
            let received = TCPSinkResult(bytes: bytes, connections: 2, activeSeconds: 2, gigabitsPerSecond: 2, cpuSeconds: 1)
            result = try RunResult.from(senders: [json(sent)], sink: json(received), traffic: traffic(.tcpBulk))
        case .tcpCRR, .rr:
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
            for sample in 0..<1000 { histogram.record(latency + UInt64(sample) * 10) }
            let transactions = Int(10_000 * scale)
            let sent = TransactionResult(transactions: transactions, failures: 0, duration: 2,
                                         transactionsPerSecond: Double(transactions) / 2,
                                         latency: LatencyPercentiles(histogram), p50Microseconds: 0, p99Microseconds: 0,
                                         cpuSeconds: 1)
            let served = ServerResult(transactions: transactions, connections: 4, cpuSeconds: 1)
            result = try RunResult.from(senders: [json(sent)], sink: json(served), traffic: traffic(kind))
        }
        result.mode = mode
        result.cpuSeconds = 2
        return result
    }

    static func scenario(_ kind: Scenario.TrafficKind, fast: Double = 2,
                         expect: Scenario.Expectation = Scenario.Expectation()) throws -> ScenarioResult {
        var runs: [RunResult] = []
        for repetition in 0..<3 {
            let jitter = 1 + Double(repetition) * 0.01
            runs.append(try run(kind, mode: "slow", scale: jitter, latency: 200_000))
            runs.append(try run(kind, mode: "flowctl", scale: fast * jitter, latency: 100_000))
            runs.append(try run(kind, mode: "nft:Scenarios/vlan-handwritten.nft", scale: fast * 0.9 * jitter))
        }
        return ScenarioResult(scenario: "s-\(kind.rawValue)", description: "a scenario", traffic: traffic(kind), runs: runs,
                              expect: expect, modes: ["slow", "flowctl", "nft:Scenarios/vlan-handwritten.nft"])
    }

    func testResultsAreCheckedAgainstEachOther() throws {
        let sent = PktgenSender.Result(packets: 10, bytes: 640, duration: 1, mode: .inject, errors: 10, pktgenResult: "", flows: 1)
        let more = DropSink.Result(packets: 11, bytes: 704, device: "eth0", hook: .ingress)
        XCTAssertThrowsError(try RunResult.from(senders: [Self.json(sent)], sink: Self.json(more),
                                                traffic: Self.traffic(.udp, generator: .inject, sink: .drop))) { error in
            XCTAssertTrue("\(error)".contains("received 11 UDP packets but sent 10"), "\(error)")
        }
        XCTAssertThrowsError(try RunResult.from(senders: ["oops"], sink: Self.json(more),
                                                traffic: Self.traffic(.udp, generator: .inject, sink: .drop))) { error in
            XCTAssertTrue("\(error)".contains("pktgen: not its JSON result"), "\(error)")
        }
        // Two senders (a group of guests): counts added.
        let a = UDPSendResult(packets: 100, bytes: 1800, duration: 1, packetsPerSecond: 100, errors: 0, flows: [:], cpuSeconds: 0)
        let sink = UDPSinkResult(packets: 150, bytes: 2700, activeSeconds: 1.5, packetsPerSecond: 100, flows: [:], cpuSeconds: 0)
        let both = try RunResult.from(senders: [Self.json(a), Self.json(a)], sink: Self.json(sink), traffic: Self.traffic(.udp))
        XCTAssertEqual(both.packetsSent, 200)
        XCTAssertEqual(both.packetsPerSecond, 100, accuracy: 1e-9)
        XCTAssertEqual(both.lossFraction, 0.25, accuracy: 1e-9)
    }

    func testEachKindIsReportedByItsOwnMetric() throws {
        let expected: [(Scenario.TrafficKind, Metric, String)] = [
            (.udp, .packetsPerSecond, "packets/s median"), (.tcpBulk, .gigabitsPerSecond, "Gbit/s median"),
            (.tcpCRR, .connectionsPerSecond, "connections/s median"), (.rr, .transactionsPerSecond, "transactions/s median"),
        ]
        for (kind, metric, column) in expected {
            let result = try Self.scenario(kind)
            let summaries = result.summaries
            let fast = try XCTUnwrap(summaries.first { $0.mode == "flowctl" })
            XCTAssertEqual(fast.primaryMetric, metric)
            XCTAssertEqual(try XCTUnwrap(fast.ratioToSlow), 2, accuracy: 1e-9, "\(kind): ratio from the primary metric")
            XCTAssertEqual(summaries.first { $0.mode == "slow" }?.ratioToSlow, 1)
            XCTAssertEqual(summaries.last?.label, "vlan-handwritten")
            // Figures that mean nothing for the kind are absent, in the JSON too.
            let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(fast)) as? [String: Any]).keys
            for other in Metric.allCases where other != metric {
                XCTAssertFalse(keys.contains(other.rawValue), "\(kind) has no \(other.rawValue)")
            }
            XCTAssertTrue(keys.contains(metric.rawValue))
            XCTAssertEqual(keys.contains("lossFraction"), kind == .udp)
            XCTAssertEqual(keys.contains("latencyP999Microseconds"), kind == .rr)
            let table = BenchReport.table(result, environment: "test")
            XCTAssertTrue(table.contains(column), table)
            XCTAssertTrue(table.contains("2.00x"), table)
            XCTAssertEqual(table.contains("loss"), kind == .udp, table)
            XCTAssertFalse(table.contains(" 0 (0-0)"), table)
        }
        let rr = try Self.scenario(.rr).summaries.first { $0.mode == "flowctl" }
        // p99 of 200..210 µs over p99 of 100..110 µs.
        XCTAssertEqual(try XCTUnwrap(rr?.latencyP99RatioToSlow), 209.9 / 109.9, accuracy: 0.01, "slow p99 over flowctl's")
        XCTAssertEqual(try XCTUnwrap(rr?.latencyP999Microseconds?.median), 110, accuracy: 1)
        XCTAssertTrue(BenchReport.table(try Self.scenario(.rr), environment: "t").contains("p99.9 µs"))
        XCTAssertEqual(try XCTUnwrap(try Self.scenario(.udp).summaries[0].cpuNanosecondsPerUnit?.median), 2000, accuracy: 30,
                       "2 busy CPU seconds over a million packets")
    }

    func testVerdicts() throws {
        let result = try Self.scenario(.udp, fast: 2.1, expect: Scenario.Expectation(
            minRatio: 2.0, minRatioTo: ["nft:Scenarios/vlan-handwritten.nft": 0.97]))
        XCTAssertEqual(result.verdicts, [
            "flowctl / slow packets/s = 2.10 (expected >= 2.00): met",
            "flowctl / vlan-handwritten packets/s = 1.111 (expected >= 0.97): met",
        ])
        let short = try Self.scenario(.tcpCRR, fast: 0.95, expect: Scenario.Expectation(minRatio: 0.97))
        XCTAssertEqual(short.verdicts.first, "flowctl / slow connections/s = 0.95 (expected >= 0.97): NOT met")
    }

    func testDocumentRoundTripsAndCompares() throws {
        let metadata = BenchMetadata(environment: "test", kernel: "6.12.118", flowctlVersion: "0.1.0", commit: "abc1234",
                                     cpus: 1, date: "2026-12-04T00:00:00Z")
        let old = BenchDocument(metadata: metadata, results: [try Self.scenario(.udp, fast: 2), try Self.scenario(.rr)])
        var newMetadata = metadata
        newMetadata.commit = "def5678"
        let new = BenchDocument(metadata: newMetadata, results: [try Self.scenario(.udp, fast: 1.5), try Self.scenario(.tcpBulk)])
        let decoded = try JSONDecoder().decode(BenchDocument.self, from: new.encoded())
        XCTAssertEqual(decoded.metadata, newMetadata)
        XCTAssertEqual(decoded.results.first?.runs, new.results.first?.runs, "every run's raw figures are kept")
        let raw = try XCTUnwrap(JSONSerialization.jsonObject(with: new.encoded()) as? [String: Any])
        XCTAssertEqual((raw["metadata"] as? [String: Any])?["kernel"] as? String, "6.12.118")

        let text = BenchReport.compare(old: old, new: decoded)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  slow ") && $0.contains("within the spread") }, text)
        XCTAssertTrue(lines.contains { $0.hasPrefix("  flowctl ") && $0.contains("-25.0%") && $0.contains("SLOWER") }, text)
        XCTAssertTrue(text.contains("s-tcp-bulk (Gbit/s):\n  not in the old report"), text)
        XCTAssertTrue(text.contains("s-rr: not in the new report"), text)

        let markdown = BenchReport.markdown(decoded)
        XCTAssertTrue(markdown.contains("| mode | runs | packets/s median (min-max) | ratio |"), markdown)
        XCTAssertTrue(markdown.contains("| flowctl | 3 | 757.5k (750.0k-765.0k) | 1.50x |"), markdown)
        XCTAssertTrue(markdown.contains("Kernel 6.12.118, 1 CPU, flowctl 0.1.0 (def5678)"), markdown)
    }

    /// Renders each chart with rsvg-convert into a canvas with a margin and
    /// checks that nothing is drawn in the margin (every text fits the
    /// picture) and that the bars are there (a chart is not empty).
    func testChartsFitTheirPictureAndShowTheBars() throws {
        let long = try Self.scenario(.tcpBulk)
        var renamed = long
        renamed.scenario = "a-scenario-with-a-rather-long-name"
        renamed.description = String(repeating: "A long description of a scenario, ", count: 4)
        renamed.modes[2] = "nft:Scenarios/peers/a-peer-configuration-with-a-long-file-name.nft"
        renamed.runs = renamed.runs.map { run in
            var run = run
            if run.mode.hasPrefix("nft:") { run.mode = renamed.modes[2] }
            return run
        }
        let charts = [BenchChart.scenario(long), BenchChart.scenario(renamed),
                      BenchChart.summary([long, renamed, try Self.scenario(.udp), try Self.scenario(.rr)])]
        // The check can fail: a text past the right edge is seen.
        let overflowing = charts[0].replacingOccurrences(of: "</svg>\n", with: "<text x=\"10\" y=\"20\" font-size=\"13\">"
            + String(repeating: "too long ", count: 200) + "</text></svg>\n")
        XCTAssertGreaterThan(try Self.render(overflowing, margin: 200).inkOutside, 0)
        for svg in charts {
            let image = try Self.render(svg, margin: 200)
            XCTAssertEqual(image.inkOutside, 0, "drawn outside the \(image.width)x\(image.height) picture:\n\(svg)")
            // The flowctl bars (#2e7d32) cover real area.
            XCTAssertGreaterThan(image.count(red: 0x2e, green: 0x7d, blue: 0x32), 500, svg)
        }
    }

    struct Rendered {
        var width: Int, height: Int, inkOutside: Int
        var pixels: [UInt8]
        func count(red: UInt8, green: UInt8, blue: UInt8) -> Int {
            stride(from: 0, to: pixels.count - 2, by: 3).filter {
                pixels[$0] == red && pixels[$0 + 1] == green && pixels[$0 + 2] == blue
            }.count
        }
    }

    static func render(_ svg: String, margin: Int) throws -> Rendered {
        let header = try XCTUnwrap(svg.range(of: #"<svg [^>]*>"#, options: .regularExpression))
        let tag = String(svg[header])
        func attribute(_ name: String) throws -> Int {
            let range = try XCTUnwrap(tag.range(of: " \(name)=\"[0-9]+\"", options: .regularExpression))
            return Int(tag[range].filter(\.isNumber))!
        }
        let width = try attribute("width"), height = try attribute("height")
        // The chart's content, moved into a bigger canvas as a group (a
        // nested <svg> would clip it to its own box and hide an overflow).
        let padded = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width + 2 * margin)\" height=\"\(height + 2 * margin)\">"
            + "<g transform=\"translate(\(margin),\(margin))\" font-family=\"sans-serif\">"
            + svg[header.upperBound...].replacingOccurrences(of: "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>", with: "")
                .replacingOccurrences(of: "</svg>\n", with: "</g></svg>\n")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chart-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let svgPath = directory.appendingPathComponent("c.svg").path, pngPath = directory.appendingPathComponent("c.png").path
        try padded.write(toFile: svgPath, atomically: true, encoding: .utf8)
        let converted = try Subprocess.run(["rsvg-convert", "--background-color=white", "-o", pngPath, svgPath])
        XCTAssertTrue(converted.succeeded, "rsvg-convert (librsvg2-bin; scripts/test installs it): \(converted)")
        let ppmPath = directory.appendingPathComponent("c.ppm").path
        let decoded = try Subprocess.run(["sh", "-c", "pngtopnm \"$0\" > \"$1\"", pngPath, ppmPath])
        XCTAssertTrue(decoded.succeeded, "pngtopnm (netpbm; scripts/test installs it): \(decoded)")
        let ppm = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ppmPath)))
        // P6 <width> <height> 255 <RGB bytes>
        var fields: [Int] = [], index = 2
        while fields.count < 3 {
            while ppm[index] == 0x20 || ppm[index] == 0x0a { index += 1 }
            var number = 0
            while ppm[index] >= 0x30 && ppm[index] <= 0x39 { number = number * 10 + Int(ppm[index] - 0x30); index += 1 }
            fields.append(number)
        }
        let pixels = Array(ppm[(index + 1)...])
        let fullWidth = fields[0], fullHeight = fields[1]
        XCTAssertEqual(fullWidth, width + 2 * margin)
        XCTAssertEqual(pixels.count, fullWidth * fullHeight * 3)
        var outside = 0
        for y in 0..<fullHeight {
            for x in 0..<fullWidth where x < margin || x >= margin + width || y < margin || y >= margin + height {
                let offset = (y * fullWidth + x) * 3
                if pixels[offset] < 250 || pixels[offset + 1] < 250 || pixels[offset + 2] < 250 { outside += 1 }
            }
        }
        return Rendered(width: width, height: height, inkOutside: outside, pixels: pixels)
    }
}
