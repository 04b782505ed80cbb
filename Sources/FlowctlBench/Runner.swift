import FlowctlCore
import FlowctlProcess
import Foundation
import Synchronization

/// Runs a scenario: builds its topology, then for each repetition runs
/// every mode (in a rotating order, so no mode always goes first), each
/// run being: configure the mode, start the sink, run the senders, read
/// both results, undo the mode. Tears everything down at the end, on
/// failure, and on Ctrl-C. The generators are `flowctl traffic ...`
/// processes, one per namespace (never setns in this process).
public final class BenchRunner: Sendable {
    public struct Options: Sendable {
        /// The flowctl executable (the generators and `enable` run from it).
        public var flowctl: String
        public var repetitions: Int?
        public var duration: Double?
        public var progress: @Sendable (String) -> Void
        public init(flowctl: String, repetitions: Int? = nil, duration: Double? = nil,
                    progress: @escaping @Sendable (String) -> Void) {
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
    private let interrupted = Atomic<Bool>(false)

    public init(scenario: Scenario, options: Options) throws {
        self.scenario = scenario
        self.plan = try TopologyPlan(scenario)
        self.options = options
        stateDir = NSTemporaryDirectory() + "flowctl-bench-\(getpid())"
    }

    /// Runs every mode `repetitions` times; always tears down.
    public func run() throws -> ScenarioResult {
        interrupted.store(false, ordering: .relaxed)
        // Ctrl-C, a closed terminal or `kill` stop the run between steps
        // and tear down; a closed pipe only loses output (a handler, not
        // SIG_IGN, so the children keep the default dispositions).
        let signals = SignalWatch([SIGINT, SIGTERM, SIGHUP]) { [self] _ in interrupted.store(true, ordering: .relaxed) }
        let pipes = SignalWatch([SIGPIPE]) { _ in }
        defer {
            tearDown()
            signals.cancel()
            pipes.cancel()
        }
        tearDown()  // leftovers of an earlier run that was killed
        for case .nftFile(let path) in scenario.modes { try readable(path) }
        for path in scenario.hostRules { try readable(path) }
        let limits = try ConntrackLimits.raise(toHold: scenario.traffic.flows, progress: options.progress)
        defer { limits.restore() }
        options.progress("\(scenario.name): building the topology (\(plan.setup.count) steps)")
        for step in plan.setup { try sh(step) }
        var helpers: [ChildProcess] = []
        defer { Self.stop(helpers) }
        for helper in plan.helpers {
            let process = try ChildProcess(TopologyPlan.inHost([options.flowctl] + helper))
            helpers.append(process)
            usleep(200_000)
            guard process.isRunning else { throw RunError.step("flowctl " + helper.joined(separator: " "), process.finish().stderr) }
        }
        try sh(TopologyPlan.Step(TopologyPlan.inHost(["nft", "-f", "-"]), input: Self.baseRules))
        for path in scenario.hostRules { try sh(TopologyPlan.Step(TopologyPlan.inHost(["nft", "-f", path]))) }

        let repetitions = options.repetitions ?? scenario.repetitions
        var runs: [RunResult] = []
        for repetition in 0..<repetitions {
            let rotation = repetition % scenario.modes.count
            let order = Array(scenario.modes[rotation...] + scenario.modes[..<rotation])
            for mode in order {
                if interrupted.load(ordering: .relaxed) { throw RunError.interrupted }
                options.progress("\(scenario.name): repetition \(repetition + 1)/\(repetitions), mode \(mode)")
                try enable(mode)
                defer { disable(mode) }
                var result = try runTraffic(mode: mode, repetition: repetition)
                result.mode = mode.description
                runs.append(result)
                let metric = Metric.primary(for: scenario.traffic.kind)
                options.progress("  \(mode): \(metric.format(result.value(metric) ?? 0)) \(metric.title)"
                                 + (scenario.traffic.kind == .udp ? ", loss \(Format.percent(result.lossFraction))" : "")
                                 + (result.offloadedFraction.map { ", offloaded \(Format.percent($0))" } ?? ""))
            }
        }
        if interrupted.load(ordering: .relaxed) { throw RunError.interrupted }
        return ScenarioResult(scenario: scenario.name, description: scenario.description,
                              traffic: scenario.traffic, runs: runs, expect: scenario.expect,
                              modes: scenario.modes.map(\.description))
    }

    /// Asks the helpers to stop, and kills those still running a second later.
    static func stop(_ processes: [ChildProcess]) {
        processes.forEach { $0.terminate() }
        for _ in 0..<20 where processes.contains(where: \.isRunning) { usleep(50_000) }
        processes.forEach { $0.kill() }
        processes.forEach { _ = $0.finish() }
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

    /// The tables an nft file declares (`table FAMILY NAME` lines): what
    /// undoing it deletes.
    static func declaredTables(_ path: String) -> [(family: String, name: String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 3, words[0] == "table" else { return nil }
            return (String(words[1]), String(words[2]))
        }
    }

    func readable(_ path: String) throws {
        guard FileManager.default.isReadableFile(atPath: path) else { throw RunError.step("nft -f \(path)", "cannot read the file") }
    }

    func deleteTables(_ path: String) {
        for table in Self.declaredTables(path) {
            _ = try? Subprocess.run(TopologyPlan.inHost(["nft", "delete", "table", table.family, table.name]), standardError: .discard)
        }
    }

    func flowctl(_ verb: String, _ bridge: String) -> [String] {
        TopologyPlan.inHost([options.flowctl, verb, bridge, "--state-dir", stateDir, "--control-socket", stateDir + "/no-daemon.sock"])
    }

    func enable(_ mode: Scenario.Mode) throws {
        switch mode {
        case .slow:
            break
        case .flowctl:
            for bridge in scenario.bridges { try sh(TopologyPlan.Step(flowctl("enable", bridge.name))) }
        case .nftFile(let path):
            try sh(TopologyPlan.Step(TopologyPlan.inHost(["nft", "-f", path])))
        }
    }

    func disable(_ mode: Scenario.Mode) {
        switch mode {
        case .slow:
            break
        case .flowctl:
            for bridge in scenario.bridges { _ = try? Subprocess.run(flowctl("disable", bridge.name)) }
        case .nftFile(let path):
            deleteTables(path)
        }
        _ = try? Subprocess.run(TopologyPlan.inHost(["conntrack", "-F"]), standardError: .discard)
    }

    func tearDown() {
        // The host namespace's deletion takes the bridges, rules and flowctl's tables with it.
        for step in plan.teardown { _ = try? Subprocess.run(step.argv, input: step.input, standardError: .discard) }
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
        let ready = stateDir + "/sink-ready-\(repetition)-\(abs(mode.description.hashValue))"
        try? FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)

        // The commands of the senders (argv each) and of the sink.
        var senders: [[String]]
        switch traffic.generator {
        case .socket:
            let command = Self.senderCommand(traffic: traffic, target: target, duration: duration,
                                             flows: max(1, traffic.flows / sources.count))
            senders = sources.map { ["ip", "netns", "exec", $0, options.flowctl, "traffic"] + command }
        case .pktgen:
            let path = try pathToHost(from: traffic.from, family: destination)
            senders = [["ip", "netns", "exec", path.attachment.namespace, options.flowctl, "traffic", "pktgen",
                        "--device", path.attachment.device]
                + pktgenArguments(path: path, to: destination, sourcePorts: flowSourcePorts,
                                  destinationPorts: "\(port)", duration: duration)]
        case .inject:
            let path = try pathToHost(from: traffic.from, family: destination)
            try warmUp(path: path, destination: destination, port: port)
            senders = [injectCommand(path: path, to: destination, sourcePorts: flowSourcePorts,
                                     destinationPorts: "\(port)", duration: duration)]
        }
        let sinkCommand: [String]
        if traffic.sink == .drop {
            guard let attachment = plan.attachments[traffic.to] else { throw RunError.step("sink", "unknown endpoint \(traffic.to)") }
            // A tap's reader is the VM: the host's work ends at the tap's egress.
            sinkCommand = ["ip", "netns", "exec", attachment.isTap ? TopologyPlan.host : toNS] + [
                options.flowctl, "traffic", "drop-sink", "--device", attachment.isTap ? attachment.port : attachment.device,
                "--hook", attachment.isTap ? "egress" : "ingress", "--duration", String(format: "%.3f", duration + 30),
                "--ready-file", ready]
        } else {
            sinkCommand = ["ip", "netns", "exec", toNS, options.flowctl, "traffic"]
                + Self.sinkCommand(traffic: traffic, port: port, duration: duration, readyFile: ready)
        }

        let sink = try ChildProcess(sinkCommand)
        defer { Self.stop([sink]) }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) {
            if Date() > deadline || !sink.isRunning {
                throw RunError.generator("the sink (\(sinkCommand.joined(separator: " ")))", sink.finish().stderr)
            }
            usleep(20_000)
        }
        let cpuBefore = CPUSample.read()
        var running: [ChildProcess] = []
        defer { Self.stop(running) }
        for argv in senders { running.append(try ChildProcess(argv)) }
        let outputs = running.map { $0.finish() }
        let cpuAfter = CPUSample.read()
        // Offloaded entries, read after the measured window (reading costs
        // the one CPU); they stay offloaded for the flowtable's timeout.
        let offloaded = offloadedFlows()
        for (index, sent) in outputs.enumerated() where sent.status != 0 {
            throw RunError.generator("the sender (\(senders[index].joined(separator: " ")))", sent.stderr)
        }
        sink.interrupt()  // the sink stops at once and reports
        let received = sink.finish()
        guard received.status == 0 else { throw RunError.generator("the sink in \(toNS)", received.stderr) }
        var result = try RunResult.from(senders: outputs.map(\.stdout), sink: received.stdout, traffic: traffic)
        result.cpuSeconds = cpuAfter.busySeconds - cpuBefore.busySeconds
        // Offloaded entries over the flows the scenario runs (short
        // connections come and go: no fraction for them).
        if mode != .slow, traffic.kind != .tcpCRR, let offloaded {
            result.offloadedFraction = min(1, Double(offloaded) / Double(traffic.flows))
        }
        return result
    }

    /// How an endpoint's frames reach the host: its attachment, its own
    /// address and MAC, and the MAC of its next hop into the host.
    struct PathToHost {
        var attachment: TopologyPlan.Attachment
        var source: String
        var sourceMAC: String
        var gatewayMAC: String
    }

    /// Makes the endpoint speak first, as a VM or container does (one
    /// ping to its next hop), so the host knows its MAC and its bridge
    /// port; then reads both MACs inside its namespace.
    func pathToHost(from name: String, family destination: String) throws -> PathToHost {
        let v6 = destination.contains(":")
        guard let attachment = plan.attachments[name],
              let gateway = attachment.gateways.first(where: { $0.contains(":") == v6 }),
              let source = plan.addresses[name]?.first(where: { $0.contains(":") == v6 }) else {
            throw RunError.step("pktgen", "\(name) needs an address and a gateway of the destination's family (\(v6 ? "IPv6" : "IPv4"))")
        }
        let ns = attachment.namespace
        _ = try? Subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", gateway], standardError: .discard)
        struct Link: Decodable { var address: String }
        struct Neighbour: Decodable { var lladdr: String? }
        let link = try ipJSON([Link].self, ["ip", "-n", ns, "-j", "link", "show", attachment.device])
        let neighbour = try ipJSON([Neighbour].self, ["ip", "-n", ns, "-j", "neigh", "show", gateway])
        guard let mac = link.first?.address, let gatewayMAC = neighbour.first?.lladdr else {
            throw RunError.step("pktgen", "\(name) could not resolve its gateway \(gateway) (no neighbour entry after a ping)")
        }
        return PathToHost(attachment: attachment, source: source, sourceMAC: mac, gatewayMAC: gatewayMAC)
    }

    func ipJSON<T: Decodable>(_ type: T.Type, _ argv: [String]) throws -> T {
        let result = try Subprocess.run(argv)
        guard result.succeeded, let value = try? JSONDecoder().decode(T.self, from: Data(result.stdout.utf8)) else {
            throw RunError.step(argv.joined(separator: " "), result.stderr.isEmpty ? result.stdout : result.stderr)
        }
        return value
    }

    func pktgenArguments(path: PathToHost, to destination: String, sourcePorts: String, destinationPorts: String,
                         duration: Double, count: Int? = nil) -> [String] {
        // Payload + UDP + IP + Ethernet + FCS, and the 802.1Q tag of a tagged guest.
        let frame = scenario.traffic.size + 8 + (destination.contains(":") ? 40 : 20) + 14 + 4
            + (path.attachment.vlan == nil ? 0 : 4)
        var arguments = ["--to", destination, "--from", path.source, "--dst-mac", path.gatewayMAC,
                         "--src-mac", path.sourceMAC, "--size", "\(frame)", "--src-ports", sourcePorts,
                         "--dst-ports", destinationPorts, "--duration", String(format: "%.3f", duration)]
        if let vlan = path.attachment.vlan { arguments += ["--vlan", "\(vlan)"] }
        if let count { arguments += ["--count", "\(count)"] }
        return arguments
    }

    /// The source ports of the scenario's flows, one each (pktgen's range).
    var flowSourcePorts: String { "10000-\(10000 + scenario.traffic.flows - 1)" }

    /// pktgen injecting `path`'s frames at its port in the host namespace.
    func injectCommand(path: PathToHost, to destination: String, sourcePorts: String, destinationPorts: String,
                       duration: Double, count: Int? = nil) -> [String] {
        TopologyPlan.inHost([options.flowctl, "traffic", "pktgen", "--inject", "--device", path.attachment.port])
            + pktgenArguments(path: path, to: destination, sourcePorts: sourcePorts, destinationPorts: destinationPorts,
                              duration: duration, count: count)
    }

    /// Before an injected run: two frames of every flow each way, injected
    /// at both ends' ports, so conntrack has seen each flow answered (as a
    /// real one is) and every mode starts from established flows.
    func warmUp(path: PathToHost, destination: String, port: Int) throws {
        let flows = scenario.traffic.flows
        let sourcePorts = flowSourcePorts
        var reply = try pathToHost(from: scenario.traffic.to, family: destination)
        reply.source = destination  // the flow's destination answers, whichever of its addresses that is
        for (from, to, source, target) in [(path, destination, sourcePorts, "\(port)"),
                                           (reply, path.source, "\(port)", sourcePorts)] {
            let argv = injectCommand(path: from, to: to, sourcePorts: source, destinationPorts: target, duration: 10,
                                     count: 2 * flows)
            let result = try Subprocess.run(argv)
            guard result.succeeded else { throw RunError.generator("the warm-up (\(argv.joined(separator: " ")))", result.stderr) }
        }
    }

    /// The `flowctl traffic` arguments of the sender.
    static func senderCommand(traffic: Scenario.Traffic, target: String, duration: Double, flows: Int) -> [String] {
        let seconds = String(format: "%.3f", duration)
        switch traffic.kind {
        case .udp:
            return ["udp-send", "--to", target, "--size", "\(traffic.size)", "--flows", "\(flows)", "--duration", seconds]
        case .tcpBulk:
            return ["tcp-send", "--to", target, "--streams", "\(flows)", "--duration", seconds]
        case .tcpCRR:
            return ["crr-client", "--to", target, "--workers", "\(flows)", "--duration", seconds]
        case .rr:
            return ["rr-client", "--to", target, "--connections", "\(flows)", "--duration", seconds]
        }
    }

    /// The `flowctl traffic` arguments of the socket sink.
    static func sinkCommand(traffic: Scenario.Traffic, port: Int, duration: Double, readyFile: String) -> [String] {
        switch traffic.kind {
        case .udp:
            return ["udp-sink", "--port", "\(port)", "--duration", String(format: "%.3f", duration + 30),
                    "--idle-timeout", "2", "--ready-file", readyFile]
        case .tcpBulk:
            return ["tcp-sink", "--port", "\(port)", "--ready-file", readyFile]
        case .tcpCRR:
            return ["crr-server", "--port", "\(port)", "--ready-file", readyFile]
        case .rr:
            return ["rr-server", "--port", "\(port)", "--ready-file", readyFile]
        }
    }

    /// Offloaded conntrack entries in the host namespace (`flowctl traffic conntrack` there).
    func offloadedFlows() -> Int? {
        guard let result = try? Subprocess.run(TopologyPlan.inHost([options.flowctl, "traffic", "conntrack"])),
              result.succeeded else { return nil }
        return (try? RunResult.decode(ConntrackSummary.self, result.stdout, what: "conntrack"))?.offloaded
    }

    // MARK: Processes

    func sh(_ step: TopologyPlan.Step) throws {
        let result = try Subprocess.run(step.argv, input: step.input)
        guard result.status == 0 else {
            throw RunError.step(step.description, result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// Room in conntrack for a scenario's flows: nf_conntrack_max and the hash
/// table (both machine-wide, settable only from the first network
/// namespace) raised for the run when they are smaller than twice the
/// flows plus some, and put back afterwards. A full table evicts entries
/// (early drop) in every mode and measures the eviction, not forwarding.
struct ConntrackLimits {
    static let maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"
    static let bucketsPath = "/sys/module/nf_conntrack/parameters/hashsize"
    var previous: [(path: String, value: String)] = []

    static func read(_ path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func write(_ path: String, _ value: String) throws {
        do { try value.write(toFile: path, atomically: false, encoding: .utf8) } catch {
            throw BenchRunner.RunError.step("echo \(value) > \(path)", "\(error)")
        }
    }

    static func raise(toHold flows: Int, progress: (String) -> Void) throws -> ConntrackLimits {
        var limits = ConntrackLimits()
        let wanted = 2 * flows + 4096
        for path in [maxPath, bucketsPath] {
            guard let value = read(path), value < wanted else { continue }
            guard access(path, W_OK) == 0 else {
                progress("warning: \(path) is \(value), fewer than \(flows) flows need, and cannot be raised here "
                         + "(only from the first network namespace): conntrack will evict entries")
                continue
            }
            progress("raising \(path) from \(value) to \(wanted) for \(flows) flows (put back afterwards)")
            do { try write(path, "\(wanted)") } catch {
                limits.restore()
                throw error
            }
            limits.previous.append((path, "\(value)"))
        }
        return limits
    }

    func restore() {
        for (path, value) in previous { try? Self.write(path, value) }
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
