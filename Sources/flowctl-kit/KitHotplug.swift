import FlowctlCore
import FlowctlDaemon
import FlowctlLinux
import FlowctlTesting
import Foundation

/// `flowctl-kit hotplug-bench --daemon-pid PID --control-socket PATH`:
/// adds and removes bridge ports under a running daemon and reports
/// - the daemon's own histogram, RTM_NEWLINK drained -> batch acknowledged;
/// - wall clock from spawning `ip link add` to the notification of the
///   daemon's commit (an upper bound: it includes starting `ip`);
/// - a full restore after `nft delete table`, a control-socket resync;
/// - the daemon's RSS and its CPU ticks over idle seconds.
/// Prints one JSON object. A benchmark tool: it reports, it does not judge.
enum KitHotplug {
    struct Result: Codable {
        var ports: Int
        var samples: Int
        var daemonEventToAck: LatencySummary?
        var wallAddMicroseconds: Summary
        /// Adds not in the flowtable after the daemon's commit (or 2 s).
        var missedAdds: Int
        /// Deleted ports still listed afterwards (the kernel unhooks them itself).
        var staleAfterDelete: Int
        var restoreAfterDeleteMilliseconds: Double?
        var devicesAtRestore: Int?
        var controlResyncMilliseconds: Double
        var daemonLastResyncMicroseconds: Double?
        var daemonRSSKiB: Int?
        var daemonIdleCPUTicks: Int?
        var idleSeconds: Double
    }

    struct Summary: Codable {
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double
        init(_ values: [Double]) {
            let sorted = values.sorted()
            func at(_ q: Double) -> Double {
                sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
            }
            p50 = at(0.5); p90 = at(0.9); p99 = at(0.99); max = sorted.last ?? 0
        }
    }

    static func option(_ args: [String], _ name: String) -> String? {
        guard let index = args.firstIndex(of: name), index + 1 < args.count else { return nil }
        return args[index + 1]
    }

    static func run(_ args: [String]) throws {
        guard let pidText = option(args, "--daemon-pid"), let daemonPID = UInt32(pidText),
              let socketPath = option(args, "--control-socket") else {
            throw KitError.usage("hotplug-bench --daemon-pid PID --control-socket PATH [--bridge br0] [--samples 200] [--idle 5] [--routes]")
        }
        let bridge = option(args, "--bridge") ?? "br0"
        let samples = Int(option(args, "--samples") ?? "200") ?? 200
        let idle = Double(option(args, "--idle") ?? "5") ?? 5
        let rules = try NftablesMonitor()
        _ = try rules.drain()
        let backend = NftablesBackend()
        func devices() throws -> Set<String> {
            Set(try backend.table(FlowctlNames.table)?.flowtables.first?.devices ?? [])
        }
        let ports = try devices().count

        // --routes: each sample is a route through a link that has none yet
        // (it joins as an uplink) and its removal (it leaves).
        let routes = args.contains("--routes")
        if routes { try ip(["link", "add", "rtb0", "up", "type", "dummy"]) }
        var wall: [Double] = []
        var missed = 0, stale = 0
        for sample in 0..<samples {
            let name = routes ? "rtb0" : "hpb\(sample)"
            let prefix = "198.18.201.\(sample % 250)/32"
            let started = ContinuousClock.now
            if routes {
                try ip(["route", "add", prefix, "dev", "rtb0"])
            } else {
                try ip(["link", "add", name, "master", bridge, "up", "type", "dummy"])
            }
            if let seen = try waitForCommit(rules, daemonPID: daemonPID, within: .seconds(2)) {
                wall.append(microseconds(seen - started))
            }
            if !(try devices().contains(name)) { missed += 1 }
            if routes {
                try ip(["route", "del", prefix, "dev", "rtb0"])
                _ = try waitForCommit(rules, daemonPID: daemonPID, within: .milliseconds(200))
            } else {
                try ip(["link", "del", name])
                _ = try waitForCommit(rules, daemonPID: daemonPID, within: .milliseconds(20))
            }
            if try devices().contains(name) { stale += 1 }
        }

        var restore: Double?
        let deleted = ContinuousClock.now
        try Subprocess.run(["nft", "delete", "table", "inet", "flowctl"])
        if let seen = try waitForCommit(rules, daemonPID: daemonPID, within: .seconds(10)) {
            restore = microseconds(seen - deleted) / 1000
        }
        let restored = restore == nil ? nil : try devices().count

        let asked = ContinuousClock.now
        _ = try ControlClient.send(ControlRequest(command: .resync), socketPath: socketPath)
        let resync = microseconds(ContinuousClock.now - asked) / 1000
        let status = try ControlClient.send(ControlRequest(command: .status), socketPath: socketPath)

        let rss = try? String(contentsOfFile: "/proc/\(daemonPID)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) }
        let before = cpuTicks(daemonPID)
        Thread.sleep(forTimeInterval: idle)
        let after = cpuTicks(daemonPID)
        try KitNftables.emit(Result(
            ports: ports, samples: samples, daemonEventToAck: status?.daemon?.statistics.eventToAckMicroseconds,
            wallAddMicroseconds: Summary(wall), missedAdds: missed, staleAfterDelete: stale,
            restoreAfterDeleteMilliseconds: restore, devicesAtRestore: restored, controlResyncMilliseconds: resync,
            daemonLastResyncMicroseconds: status?.daemon?.statistics.lastResyncMicroseconds,
            daemonRSSKiB: rss, daemonIdleCPUTicks: before.flatMap { b in after.map { $0 - b } }, idleSeconds: idle))
    }

    /// When the daemon's next commit was seen, or nil after `within`.
    static func waitForCommit(_ rules: NftablesMonitor, daemonPID: UInt32, within: Duration) throws
        -> ContinuousClock.Instant?
    {
        let deadline = ContinuousClock.now + within
        let threads = daemonThreads(daemonPID)
        while ContinuousClock.now < deadline {
            waitReadable([rules.pollDescriptor], timeoutMs: 5)
            let now = ContinuousClock.now
            for event in try rules.drain() {
                if case .commit(let commit) = event, threads.contains(commit.pid) { return now }
            }
        }
        return nil
    }

    /// Commits name the committing thread: every thread of the daemon.
    static func daemonThreads(_ pid: UInt32) -> Set<UInt32> {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return Set(tasks.compactMap { UInt32($0) } + [pid])
    }

    static func microseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    }

    static func waitReadable(_ fds: [Int32], timeoutMs: Int32) {
        var descriptors = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        _ = poll(&descriptors, nfds_t(descriptors.count), timeoutMs)
    }

    static func ip(_ args: [String]) throws {
        let result = try Subprocess.run(["ip"] + args)
        guard result.status == 0 else { throw KitError.usage("ip \(args.joined(separator: " ")) failed: \(result.stderr)") }
    }

    static func cpuTicks(_ pid: UInt32) -> Int? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "(comm)": utime and stime are the 12th and 13th fields.
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }
}
