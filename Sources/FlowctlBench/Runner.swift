import FlowctlProcess
import Foundation

/// Runs a scenario: builds its topology, then for each repetition runs
/// every mode (in a rotating order, so no mode always goes first), each
/// run being: configure the mode, start the sink in the destination
/// namespace, run the sender in the source namespace, read both results,
/// undo the mode. Tears everything down at the end, on failure, and on
/// Ctrl-C. The generators are `flowctl traffic ...` processes, one per
/// namespace (never setns in this process).
public final class BenchRunner {
    public struct Options {
        /// The flowctl executable (the generators and `enable` run from it).
        public var flowctl: String
        public var repetitions: Int?
        public var duration: Double?
        public var progress: (String) -> Void
        public init(flowctl: String, repetitions: Int? = nil, duration: Double? = nil,
                    progress: @escaping (String) -> Void) {
            self.flowctl = flowctl
            self.repetitions = repetitions
            self.duration = duration
            self.progress = progress
        }
    }

    public enum RunError: Error, CustomStringConvertible {
        case step(String, String)
        case generator(String, String)
        case interrupted
        public var description: String {
            switch self {
            case .step(let command, let output): "`\(command)` failed: \(output)"
            case .generator(let what, let output): "\(what) failed: \(output)"
            case .interrupted: "interrupted; the topology was torn down"
            }
        }
    }

    let scenario: Scenario
    let plan: TopologyPlan
    let options: Options
    let stateDir: String
    nonisolated(unsafe) static var interrupted = false

    public init(scenario: Scenario, options: Options) throws {
        self.scenario = scenario
        self.plan = try TopologyPlan(scenario)
        self.options = options
        stateDir = NSTemporaryDirectory() + "flowctl-bench-\(getpid())"
    }

    /// Runs every mode `repetitions` times; always tears down.
    public func run() throws -> ScenarioResult {
        Self.interrupted = false
        signal(SIGINT) { _ in BenchRunner.interrupted = true }
        signal(SIGTERM) { _ in BenchRunner.interrupted = true }
        defer {
            tearDown()
            signal(SIGINT, SIG_DFL)
            signal(SIGTERM, SIG_DFL)
        }
        tearDown()  // leftovers of an earlier run that was killed
        options.progress("\(scenario.name): building the topology (\(plan.setup.count) steps)")
        for step in plan.setup { try sh(step) }
        var helpers: [ChildProcess] = []
        defer { helpers.forEach { $0.terminate(); _ = $0.finish() } }
        for helper in plan.helpers {
            let process = try ChildProcess([options.flowctl] + helper)
            helpers.append(process)
            usleep(200_000)
            guard process.isRunning else { throw RunError.step("flowctl " + helper.joined(separator: " "), process.finish().stderr) }
        }
        try sh(TopologyPlan.Step(["nft", "-f", "-"], input: Self.baseRules))

        let repetitions = options.repetitions ?? scenario.repetitions
        var runs: [RunResult] = []
        for repetition in 0..<repetitions {
            let rotation = repetition % scenario.modes.count
            let order = Array(scenario.modes[rotation...] + scenario.modes[..<rotation])
            for mode in order {
                if Self.interrupted { throw RunError.interrupted }
                options.progress("\(scenario.name): repetition \(repetition + 1)/\(repetitions), mode \(mode)")
                try enable(mode)
                defer { disable(mode) }
                var result = try runTraffic(mode: mode, repetition: repetition)
                result.mode = mode.description
                runs.append(result)
                options.progress("  \(mode): \(Format.rate(result.packetsPerSecond)) pps received, loss \(Format.percent(result.lossFraction))"
                                 + (result.offloadedFraction.map { ", offloaded \(Format.percent($0))" } ?? ""))
            }
        }
        return ScenarioResult(scenario: scenario.name, description: scenario.description,
                              traffic: scenario.traffic, runs: runs, expect: scenario.expect,
                              modes: scenario.modes.map(\.description))
    }

    // MARK: Modes

    /// The slow path's rules, present in every mode: conntrack and a
    /// forward chain that accepts established flows (as any host firewall).
    static let baseRules = """
        table inet fb_base {
            chain forward {
                type filter hook forward priority filter; policy accept;
                ct state established,related counter accept
                ct state new counter accept
            }
        }
        """

    func enable(_ mode: Scenario.Mode) throws {
        switch mode {
        case .slow:
            break
        case .flowctl:
            for bridge in scenario.bridges {
                try sh(TopologyPlan.Step([options.flowctl, "enable", bridge.name, "--state-dir", stateDir,
                                          "--control-socket", stateDir + "/no-daemon.sock"]))
            }
        case .nftFile(let path):
            try sh(TopologyPlan.Step(["nft", "-f", path]))
        }
    }

    func disable(_ mode: Scenario.Mode) {
        switch mode {
        case .slow:
            break
        case .flowctl:
            for bridge in scenario.bridges {
                _ = try? Subprocess.run([options.flowctl, "disable", bridge.name, "--state-dir", stateDir,
                                   "--control-socket", stateDir + "/no-daemon.sock"])
            }
        case .nftFile(let path):
            // Delete the tables the file declares.
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ")
                    if words.count >= 3, words[0] == "table" {
                        _ = try? Subprocess.run(["nft", "delete", "table", String(words[1]), String(words[2])])
                    }
                }
            }
        }
        _ = try? Subprocess.run(["conntrack", "-F"])
    }

    func tearDown() {
        for step in plan.teardown { _ = try? Subprocess.run(step.argv, input: step.input) }
        _ = try? Subprocess.run(["nft", "delete", "table", "inet", "fb_base"])
        for bridge in scenario.bridges {
            _ = try? Subprocess.run([options.flowctl, "disable", bridge.name, "--state-dir", stateDir,
                               "--control-socket", stateDir + "/no-daemon.sock"])
        }
        try? FileManager.default.removeItem(atPath: stateDir)
    }

    // MARK: Traffic

    func runTraffic(mode: Scenario.Mode, repetition: Int) throws -> RunResult {
        let traffic = scenario.traffic
        let duration = options.duration ?? traffic.duration
        // A group of guests (count > 1) sends from every member, the flows shared out.
        let members = plan.members[traffic.from] ?? [traffic.from]
        let sources = members.compactMap { plan.namespaces[$0] }
        guard !sources.isEmpty, sources.count == members.count, let toNS = plan.namespaces[traffic.to] else {
            throw RunError.step("traffic", "unknown endpoint")
        }
        let destination = traffic.address ?? plan.addresses[traffic.to]?.first ?? ""
        let port = 9000 + repetition % 1000
        let target = destination.contains(":") ? "[\(destination)]:\(port)" : "\(destination):\(port)"
        let ready = stateDir + "/sink-ready-\(repetition)-\(mode.description.hashValue)"
        try? FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        var (sinkCommand, sendCommand) = Self.generatorCommands(traffic: traffic, target: target, port: port,
                                                                duration: duration, readyFile: ready)
        if traffic.generator == .pktgen {
            sendCommand = try pktgenCommand(destination: destination, port: port, duration: duration)
        }
        let sink = try ChildProcess(["ip", "netns", "exec", toNS, options.flowctl, "traffic"] + sinkCommand)
        defer { sink.terminate() }
        // Wait for the sink to be listening.
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) {
            if Date() > deadline || !sink.isRunning {
                throw RunError.generator("the sink in \(toNS)", sink.finish().stderr)
            }
            usleep(20_000)
        }
        let cpuBefore = CPUSample.read()
        if sources.count > 1, let index = sendCommand.firstIndex(of: "--flows"), index + 1 < sendCommand.count {
            sendCommand[index + 1] = "\(max(1, traffic.flows / sources.count))"
        }
        let senders = try sources.map { try ChildProcess(["ip", "netns", "exec", $0, options.flowctl, "traffic"] + sendCommand) }
        // Halfway through, how many flows does conntrack show offloaded?
        usleep(useconds_t(min(duration / 2, 5) * 1_000_000))
        let offloaded = OffloadSample.read()
        let outputs = senders.map { $0.finish() }
        let cpuAfter = CPUSample.read()
        for (index, sent) in outputs.enumerated() where sent.status != 0 {
            throw RunError.generator("the sender in \(sources[index])", sent.stderr)
        }
        let sentJSON = try RunResult.combine(outputs.map(\.stdout))
        sink.interrupt()  // the sink stops at once and reports
        let received = sink.finish()
        guard received.status == 0 else { throw RunError.generator("the sink in \(toNS)", received.stderr) }
        var result = try RunResult.from(sender: sentJSON, sink: received.stdout, kind: traffic.kind)
        result.cpuSeconds = cpuAfter.busySeconds - cpuBefore.busySeconds
        result.offloadedFraction = mode == .slow ? nil : offloaded.fraction
        return result
    }

    /// pktgen from the source guest's base device, to its gateway's MAC.
    func pktgenCommand(destination: String, port: Int, duration: Double) throws -> [String] {
        let traffic = scenario.traffic
        guard let guest = scenario.guests.first(where: { $0.name == traffic.from || traffic.from.hasPrefix($0.name) }) else {
            throw RunError.step("pktgen", "generator \"pktgen\" sends from a guest; \(traffic.from) is not one")
        }
        let v6 = destination.contains(":")
        guard let gateway = v6 ? guest.gateway6 : guest.gateway,
              let source = plan.addresses[traffic.from]?.first(where: { $0.contains(":") == v6 }) else {
            throw RunError.step("pktgen", "guest \(guest.name) needs a gateway and an address of the destination's family")
        }
        // Payload + UDP + IP + Ethernet + FCS.
        let frame = traffic.size + 8 + (v6 ? 40 : 20) + 14 + 4
        var command = ["pktgen", "--device", "eth0", "--to", destination, "--from", source, "--gateway", gateway,
                       "--size", "\(frame)", "--flows", "\(traffic.flows)", "--duration", String(format: "%.3f", duration),
                       "--port", "\(port)"]
        if let vlan = guest.vlan { command += ["--vlan", "\(vlan)"] }
        return command
    }

    /// The `flowctl traffic` arguments of the sink and the sender.
    static func generatorCommands(traffic: Scenario.Traffic, target: String, port: Int, duration: Double,
                                  readyFile: String) -> (sink: [String], sender: [String])
    {
        let seconds = String(format: "%.3f", duration)
        let sinkSeconds = String(format: "%.3f", duration + 30)
        switch traffic.kind {
        case .udp:
            return (["udp-sink", "--port", "\(port)", "--duration", sinkSeconds, "--idle-timeout", "2",
                     "--ready-file", readyFile],
                    ["udp-send", "--to", target, "--size", "\(traffic.size)", "--flows", "\(traffic.flows)",
                     "--duration", seconds])
        case .tcpBulk:
            return (["tcp-sink", "--port", "\(port)", "--ready-file", readyFile],
                    ["tcp-send", "--to", target, "--streams", "\(traffic.flows)", "--duration", seconds])
        case .tcpCRR:
            return (["crr-server", "--port", "\(port)", "--ready-file", readyFile],
                    ["crr-client", "--to", target, "--workers", "\(traffic.flows)", "--duration", seconds])
        case .rr:
            return (["rr-server", "--port", "\(port)", "--ready-file", readyFile],
                    ["rr-client", "--to", target, "--connections", "\(traffic.flows)", "--duration", seconds])
        }
    }

    // MARK: Processes

    func sh(_ step: TopologyPlan.Step) throws {
        let result = try Subprocess.run(step.argv, input: step.input)
        guard result.status == 0 else {
            throw RunError.step(step.description, result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

}

/// System-wide busy CPU time from /proc/stat (user, nice, system, irq, softirq).
struct CPUSample {
    var busySeconds: Double
    static func read() -> CPUSample {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else {
            return CPUSample(busySeconds: 0)
        }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard values.count >= 7 else { return CPUSample(busySeconds: 0) }
        let ticks = values[0] + values[1] + values[2] + values[5] + values[6]
        return CPUSample(busySeconds: ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }
}

/// Conntrack entries with [OFFLOAD] among all, from `conntrack -L`.
struct OffloadSample {
    var entries: Int
    var offloaded: Int
    var fraction: Double? { entries == 0 ? nil : Double(offloaded) / Double(entries) }
    static func read() -> OffloadSample {
        guard let output = try? Subprocess.run(["conntrack", "-L"]) else { return OffloadSample(entries: 0, offloaded: 0) }
        let lines = output.stdout.split(separator: "\n").filter { $0.contains("udp") || $0.contains("tcp") }
        return OffloadSample(entries: lines.count, offloaded: lines.filter { $0.contains("OFFLOAD") }.count)
    }
}
