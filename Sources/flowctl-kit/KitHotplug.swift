import FlowctlCore
import FlowctlLinux
import FlowctlTesting
import Foundation

/// `flowctl-kit hotplug-bench --daemon-pid PID --bridge br0 --samples N`:
/// measures, from outside the daemon, the time from the kernel's
/// RTM_NEWLINK of a new bridge port (as this process receives it) to the
/// notification of the daemon's nftables commit that adds it (the kernel
/// has acked the batch by then). Also times a full restore after
/// `nft delete table`, and reads the daemon's RSS and idle CPU.
/// Prints one JSON object. A benchmark tool: it reports, it does not judge.
enum KitHotplug {
    struct Result: Codable {
        var samples: Int
        var addMicroseconds: Summary
        var removeMicroseconds: Summary
        var restoreAfterDeleteMilliseconds: Double?
        var devicesAtRestore: Int?
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
        guard let pidText = option(args, "--daemon-pid"), let daemonPID = UInt32(pidText) else {
            throw KitError.usage("hotplug-bench --daemon-pid PID [--bridge br0] [--samples 200] [--idle 5]")
        }
        let bridge = option(args, "--bridge") ?? "br0"
        let samples = Int(option(args, "--samples") ?? "200") ?? 200
        let idle = Double(option(args, "--idle") ?? "5") ?? 5
        let links = try RtnetlinkMonitor()
        let rules = try NftablesMonitor()
        _ = try links.drain()
        _ = try rules.drain()

        var adds: [Double] = []
        var removes: [Double] = []
        for sample in 0..<samples {
            let name = "hpb\(sample)"
            try ip(["link", "add", name, "master", bridge, "up", "type", "dummy"])
            if let latency = try measure(links: links, rules: rules, daemonPID: daemonPID, match: { event in
                if case .link(let link) = event { return link.name == name && link.masterIndex != nil }
                return false
            }) { adds.append(latency) }
            try ip(["link", "del", name])
            if let latency = try measure(links: links, rules: rules, daemonPID: daemonPID, match: { event in
                if case .linkRemoved(_, let removed) = event { return removed == name }
                return false
            }) { removes.append(latency) }
        }

        // Full restore: delete the table, wait for the daemon's commit.
        var restore: Double?
        var devices: Int?
        let deleted = ContinuousClock.now
        try Subprocess.run(["nft", "delete", "table", "inet", "flowctl"])
        let deadline = ContinuousClock.now + .seconds(5)
        outer: while ContinuousClock.now < deadline {
            try waitReadable([rules.pollDescriptor], timeoutMs: 100)
            for event in try rules.drain() {
                if case .commit(let commit) = event, daemonThreads(daemonPID).contains(commit.pid) {
                    restore = microseconds(ContinuousClock.now - deleted) / 1000
                    break outer
                }
            }
        }
        if restore != nil {
            devices = try NftablesBackend().table(FlowctlNames.table)?.flowtables.first?.devices.count
        }

        let rss = try? String(contentsOfFile: "/proc/\(daemonPID)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) }
        let before = cpuTicks(daemonPID)
        Thread.sleep(forTimeInterval: idle)
        let after = cpuTicks(daemonPID)
        let result = Result(samples: samples, addMicroseconds: Summary(adds), removeMicroseconds: Summary(removes),
                            restoreAfterDeleteMilliseconds: restore, devicesAtRestore: devices,
                            daemonRSSKiB: rss, daemonIdleCPUTicks: before.flatMap { b in after.map { $0 - b } },
                            idleSeconds: idle)
        try KitNftables.emit(result)
    }

    /// Waits for the link event matching `match`, then for the daemon's next
    /// commit; returns the microseconds between the two receptions.
    static func measure(links: RtnetlinkMonitor, rules: NftablesMonitor, daemonPID: UInt32,
                        match: (TopologyEvent) -> Bool) throws -> Double?
    {
        let deadline = ContinuousClock.now + .seconds(2)
        var seen: ContinuousClock.Instant?
        while ContinuousClock.now < deadline {
            try waitReadable([links.pollDescriptor, rules.pollDescriptor], timeoutMs: 50)
            let now = ContinuousClock.now
            if seen == nil, try links.drain().contains(where: match) { seen = now }
            for event in try rules.drain() {
                if case .commit(let commit) = event, daemonThreads(daemonPID).contains(commit.pid), let seen {
                    return microseconds(now - seen)
                }
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

    static func waitReadable(_ fds: [Int32], timeoutMs: Int32) throws {
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
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }
}
