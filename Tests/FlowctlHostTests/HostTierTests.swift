import FlowctlCore
import FlowctlTesting
import Foundation
import XCTest

/// The host tier: real kernel objects in a fresh network namespace per
/// test, driven through child processes (flowctl-kit, flowctl) inside it.
/// Needs root; fails loudly without it. Passes on any kernel: where the
/// answer depends on what the kernel offers (flowtables, 802.1Q), the test
/// probes it in a namespace of its own and checks the behaviour that kernel
/// calls for, never assuming either. (The development machine has neither;
/// the lab kernel and a Debian or Ubuntu host have both; scripts/test runs
/// this tier on the former, `scripts/lab -- .build/debug/flowctlPackageTests.xctest
/// FlowctlHostTests` on the lab kernel.)
class HostTestCase: XCTestCase {
    var kit: String { Subprocess.product("flowctl-kit") }
    var flowctl: String { Subprocess.product("flowctl") }

    override func setUpWithError() throws {
        guard geteuid() == 0 else {
            throw HostTierError.notRoot
        }
        for tool in [kit, flowctl] where !FileManager.default.isExecutableFile(atPath: tool) {
            XCTFail("\(tool) is not built: run swift build first")
        }
    }

    /// Whether this kernel takes an nftables flowtable (CONFIG_NF_FLOW_TABLE).
    func kernelHasFlowtables() throws -> Bool {
        try TestNamespace().run(["sh", "-c", "nft add table inet probe && nft add flowtable inet probe f '{ hook ingress priority 0; }'"]).succeeded
    }

    func decode<T: Decodable>(_ type: T.Type, _ result: ProcessResult) throws -> T {
        XCTAssertEqual(result.status, 0, "\(result)")
        return try JSONDecoder().decode(T.self, from: Data(result.stdout.utf8))
    }
}

enum HostTierError: Error, CustomStringConvertible {
    case notRoot
    var description: String { "the host tier needs root (network namespaces, nftables): run scripts/test as root" }
}

final class DiscoveryTests: HostTestCase {
    func testBridgeVethTapRoutesAreDiscovered() throws {
        let ns = try TestNamespace()
        try ns.sh("""
            ip link add br0 type bridge
            ip link add vnet0 type veth peer name guest0
            ip link set vnet0 master br0
            ip tuntap add dev tap0 mode tap
            ip link set tap0 master br0
            ip link add up0 type veth peer name ext0
            ip link set up0 mtu 9000
            ip link set br0 up; ip link set vnet0 up; ip link set guest0 up; ip link set up0 up; ip link set ext0 up
            ip addr add 198.18.0.1/24 dev up0
            ip route add default via 198.18.0.2 dev up0
            ip -6 addr add 2001:2::1/64 dev up0 nodad
            ip -6 route add default via 2001:2::2 dev up0
            ip route add 198.19.0.0/16 via 198.18.0.3 table 100
            """)
        let topology = try decode(Topology.self, try ns.run([kit, "topology"]))
        let br0 = try XCTUnwrap(topology.link(named: "br0"))
        XCTAssertEqual(br0.kind, .bridge)
        let vnet0 = try XCTUnwrap(topology.link(named: "vnet0"))
        XCTAssertEqual(vnet0.kind, .veth)
        XCTAssertEqual(vnet0.masterIndex, br0.index)
        XCTAssertTrue(vnet0.isUp)
        let tap0 = try XCTUnwrap(topology.link(named: "tap0"))
        XCTAssertEqual(tap0.kind, .tun)
        XCTAssertEqual(tap0.masterIndex, br0.index)
        XCTAssertFalse(tap0.isRunning, "a tap without a reader has no carrier")
        XCTAssertEqual(topology.ports(of: br0).map(\.name).sorted(), ["tap0", "vnet0"])
        let up0 = try XCTUnwrap(topology.link(named: "up0"))
        XCTAssertEqual(up0.mtu, 9000)
        XCTAssertEqual(up0.hwTCOffload, false, "virtual devices never offload in hardware")
        XCTAssertEqual(try XCTUnwrap(topology.link(named: "lo")).kind, .loopback)

        let defaults = topology.routes.filter { $0.prefixLength == 0 }
        XCTAssertEqual(Set(defaults.map(\.family)), [.ipv4, .ipv6])
        XCTAssertTrue(defaults.allSatisfy { $0.outputIndices == [up0.index] && $0.table == Route.mainTable })
        let other = try XCTUnwrap(topology.routes.first { $0.table == 100 })
        XCTAssertEqual(other.destination, "198.19.0.0/16")
        XCTAssertEqual(other.outputIndices, [up0.index])

        // What the planner makes of it: the real ports and the uplink.
        let plan = try Planner().plan(intent: Intent(bridges: ["br0": BridgeIntent()]), topology: topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["tap0", "up0", "vnet0"])
    }

    /// With 802.1Q, a VLAN sub-interface is discovered as one (its ID and
    /// lower device) and an uplink behind it is planned as the lower device;
    /// without it, the kernel refuses the device for that reason.
    func testVlanDevicesAreDiscoveredWhereTheKernelHasThem() throws {
        let ns = try TestNamespace()
        try ns.sh("ip link add d0 type veth peer name d1")
        let result = try ns.run(["ip", "link", "add", "link", "d0", "name", "d0.10", "type", "vlan", "id", "10"])
        guard result.succeeded else {
            XCTAssertTrue(result.stderr.contains("Unknown device type") || result.stderr.contains("not supported"),
                          "refused for another reason than a missing 802.1Q: \(result)")
            let topology = try decode(Topology.self, try ns.run([kit, "topology"]))
            XCTAssertNil(topology.link(named: "d0.10"))
            return
        }
        try ns.sh("""
            ip link add br0 type bridge
            ip link add vnet0 type veth peer name g0
            ip link set vnet0 master br0
            ip link set br0 up; ip link set vnet0 up; ip link set d0 up; ip link set d1 up; ip link set d0.10 up
            ip addr add 198.18.0.1/24 dev d0.10
            ip route add default via 198.18.0.2 dev d0.10
            """)
        let topology = try decode(Topology.self, try ns.run([kit, "topology"]))
        let d0 = try XCTUnwrap(topology.link(named: "d0"))
        let vlan = try XCTUnwrap(topology.link(named: "d0.10"))
        XCTAssertEqual(vlan.kind, .vlan)
        XCTAssertEqual(vlan.vlanID, 10)
        XCTAssertEqual(vlan.lowerIndex, d0.index)
        let plan = try Planner().plan(intent: Intent(bridges: ["br0": BridgeIntent()]), topology: topology)
        XCTAssertEqual(plan.desired?.flowtable.devices, ["d0", "vnet0"], "the VLAN uplink is resolved to its lower device")
    }

    func testConntrackIsRead() throws {
        let ns = try TestNamespace()
        try ns.sh("""
            nft add table inet t
            nft add chain inet t c '{ type filter hook output priority 0; }'
            nft add rule inet t c ct state new counter
            ping -c 1 -W 1 127.0.0.1 >/dev/null
            """)
        let summary = try decode(ConntrackSummary.self, try ns.run([kit, "conntrack"]))
        XCTAssertGreaterThanOrEqual(summary.entries, 1)
        XCTAssertEqual(summary.offloaded, 0)
        XCTAssertNotNil(summary.max)
    }
}

final class NftablesHostTests: HostTestCase {
    func batch(_ changes: [NftChange]) throws -> String {
        String(decoding: try JSONEncoder().encode(NftBatch(table: FlowctlNames.table, changes: changes)), as: UTF8.self)
    }

    let table = NftChange.addTable(TableSpec(ref: FlowctlNames.table, comment: FlowctlNames.tableComment))
    let set = NftChange.addSet(InterfaceSetSpec(name: "offload_ifaces", elements: ["br0", "br0.10"]))
    let chain = NftChange.addChain(ChainSpec(name: "forward", hook: .forward, priority: FlowctlNames.forwardPriority))

    func testTableSetChainRoundTrip() throws {
        let ns = try TestNamespace()
        XCTAssertEqual(try ns.run([kit, "nft-apply"], input: try batch([table, set, chain])).status, 0)
        let dumped = try decode(KernelTable?.self, try ns.run([kit, "nft-dump", "inet", "flowctl"]))
        let kernel = try XCTUnwrap(dumped)
        XCTAssertEqual(kernel.comment, FlowctlNames.tableComment)
        XCTAssertEqual(kernel.sets, [KernelSet(name: "offload_ifaces", keyType: 41, keyLength: 16, elements: ["br0", "br0.10"])])
        XCTAssertEqual(kernel.chains.map(\.hook), [.forward])
        XCTAssertEqual(kernel.chains.first?.priority, FlowctlNames.forwardPriority)
        // nft(8) reads what flowctl wrote.
        let listed = try ns.run(["nft", "list", "set", "inet", "flowctl", "offload_ifaces"])
        XCTAssertTrue(listed.stdout.contains("\"br0.10\""), listed.stdout)
        // Incremental element change.
        XCTAssertEqual(try ns.run([kit, "nft-apply"], input: try batch([
            .deleteSetElements(set: "offload_ifaces", elements: ["br0.10"]),
            .addSetElements(set: "offload_ifaces", elements: ["br1"]),
        ])).status, 0)
        let after = try XCTUnwrap(try decode(KernelTable?.self, try ns.run([kit, "nft-dump", "inet", "flowctl"])))
        XCTAssertEqual(after.sets.first?.elements, ["br0", "br1"])
    }

    func testStaleGenerationIsRefusedWithERESTART() throws {
        let ns = try TestNamespace()
        XCTAssertEqual(try ns.run([kit, "nft-apply"], input: try batch([table])).status, 0)
        let stale = try ns.run([kit, "nft-apply", "--stale-generation"], input: try batch([set]))
        XCTAssertEqual(stale.status, 2)
        XCTAssertTrue(stale.stdout.contains("\"errno\" : \"85\""), stale.stdout)
        XCTAssertEqual(try ns.run(["nft", "list", "sets"]).stdout.contains("offload_ifaces"), false)
    }

    func testBatchIsAtomicAndNamesTheRefusedStep() throws {
        let ns = try TestNamespace()
        // The set is fine; the flowtable is refused on any kernel (ENOENT: a
        // device that does not exist, or no flowtables at all): nothing stays.
        let flowtable = NftChange.addFlowtable(FlowtableSpec(name: "fastpath", devices: ["nosuchdev0"]))
        let result = try ns.run([kit, "nft-apply"], input: try batch([table, set, flowtable, chain]))
        XCTAssertEqual(result.status, 2, "\(result)")
        XCTAssertTrue(result.stdout.contains("add flowtable inet flowctl fastpath"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\"errno\" : \"2\""), result.stdout)
        XCTAssertEqual(try ns.run(["nft", "list", "ruleset"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "")
    }

    func testDryRunCommitsNothing() throws {
        let ns = try TestNamespace()
        XCTAssertEqual(try ns.run([kit, "nft-apply", "--check"], input: try batch([table, set, chain])).status, 0)
        XCTAssertEqual(try ns.run(["nft", "list", "ruleset"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "")
    }
}

/// The CLI on this kernel: clear one-line failures, the host left as it was.
final class CLIHostTests: HostTestCase {
    /// With flowtables, enable makes the fast path and disable leaves the
    /// ruleset exactly as it was; without, enable fails in one line and
    /// changes nothing.
    func testEnableIsAllOrNothingOnThisKernel() throws {
        let flowtables = try kernelHasFlowtables()
        let ns = try TestNamespace()
        // The host `ns`: br0 (198.18.90.1/24) with the VM's port vnet0, and
        // an uplink up0 to `ext`, behind which 198.18.92.1 answers.
        let vm = try TestNamespace(prefix: "flowctl-vm")
        let ext = try TestNamespace(prefix: "flowctl-ext")
        try ns.sh("""
            sysctl -qw net.ipv4.ip_forward=1
            ip link add br0 address 02:00:00:00:00:01 type bridge
            ip link add vnet0 type veth peer name g0 netns \(vm.name)
            ip link set vnet0 master br0
            ip link set br0 up; ip link set vnet0 up
            ip addr add 198.18.90.1/24 dev br0
            ip link add up0 type veth peer name e0 netns \(ext.name)
            ip link set up0 up
            ip addr add 198.18.91.1/24 dev up0
            ip route add 198.18.92.0/24 via 198.18.91.2 dev up0
            nft add table inet other
            """)
        try vm.sh("ip link set lo up; ip link set g0 up; ip addr add 198.18.90.2/24 dev g0; ip route add default via 198.18.90.1")
        try ext.sh("ip link set lo up; ip link set e0 up; ip addr add 198.18.91.2/24 dev e0; ip addr add 198.18.92.1/32 dev lo; ip route add default via 198.18.91.1")
        let state = NSTemporaryDirectory() + "flowctl-host-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let before = try ns.run(["nft", "list", "ruleset"]).stdout
        let result = try ns.run([flowctl, "enable", "br0", "--state-dir", state, "--control-socket", state + "/none"])
        if flowtables {
            XCTAssertEqual(result.status, 0, "\(result)")
            let table = try XCTUnwrap(try decode(KernelTable?.self, try ns.run([kit, "nft-dump", "inet", "flowctl"])))
            XCTAssertEqual(table.flowtables.first?.devices, ["up0", "vnet0"])
            XCTAssertEqual(try IntentStore(directory: state).load().bridgeNames, ["br0"])
            // Traffic: the replies of a 4 MiB TCP transfer from behind the
            // uplink take the fast path (an observer chain in the forward
            // hook sees only the first packets).
            try ns.sh("nft add table inet observe; nft add chain inet observe c '{ type filter hook forward priority 0; }'; nft add rule inet observe c ip saddr 198.18.92.1 tcp sport 5001 counter")
            let bulk = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../lab/tcp-bulk.py").standardized.path
            let server = try ChildProcess(["ip", "netns", "exec", ext.name, "python3", bulk, "serve", "198.18.92.1", "5001", "64"])
            let received = try vm.run(["python3", bulk, "fetch", "198.18.92.1", "5001"])
            XCTAssertTrue(server.finish().succeeded)
            XCTAssertEqual(received.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(64 * 65536)", "\(received)")
            let counted = try ns.run(["nft", "list", "chain", "inet", "observe", "c"]).stdout
            let seen = try XCTUnwrap(counted.split(separator: " ").drop { $0 != "packets" }.dropFirst().first.flatMap { Int($0) },
                                     counted)
            XCTAssertLessThan(seen, 100, "the forward hook saw \(seen) reply packets: the replies took the slow path")
            try ns.sh("nft delete table inet observe")
            let disabled = try ns.run([flowctl, "disable", "br0", "--state-dir", state, "--control-socket", state + "/none"])
            XCTAssertEqual(disabled.status, 0, "\(disabled)")
            XCTAssertEqual(try ns.run(["nft", "list", "ruleset"]).stdout, before, "disable leaves the ruleset as it was")
            XCTAssertEqual(try IntentStore(directory: state).load(), Intent())
            return
        }
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("flowctl: error: this kernel has no nftables flowtable support"), result.stderr)
        XCTAssertEqual(try ns.run(["nft", "list", "ruleset"]).stdout, before, "the ruleset must be as it was")
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/intent.json"), "no intent stored")
    }

    func testUnknownDeviceAndNotABridge() throws {
        let ns = try TestNamespace()
        try ns.sh("ip link add v0 type veth peer name v1")
        let state = NSTemporaryDirectory() + "flowctl-host-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let unknown = try ns.run([flowctl, "enable", "br9", "--state-dir", state, "--control-socket", state + "/none"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.stderr, "flowctl: error: no such device: br9\n")
        let veth = try ns.run([flowctl, "enable", "v0", "--state-dir", state, "--control-socket", state + "/none"])
        XCTAssertEqual(veth.status, 1)
        XCTAssertEqual(veth.stderr, "flowctl: error: v0 is not a bridge (it is a veth device)\n")
    }

    /// doctor tells flowtables apart as the kernel does, names the kernel
    /// option when they are missing, fails exactly when something is.
    func testDoctorReportsWhatTheKernelHas() throws {
        let flowtables = try kernelHasFlowtables()
        let ns = try TestNamespace()
        let result = try ns.run([flowctl, "doctor"])
        XCTAssertEqual(result.status, result.stdout.contains("MISSING") ? 1 : 0, "\(result)")
        if flowtables {
            XCTAssertTrue(result.stdout.contains("ok      flowtables: supported"), result.stdout)
        } else {
            XCTAssertEqual(result.status, 1, "\(result)")
            XCTAssertTrue(result.stdout.contains("MISSING flowtables"), result.stdout)
            XCTAssertTrue(result.stdout.contains("CONFIG_NF_FLOW_TABLE"), result.stdout)
        }
        XCTAssertTrue(result.stdout.contains("ok      nf_tables inet family"), result.stdout)
        XCTAssertEqual(try ns.run(["nft", "list", "ruleset"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines), "",
                       "probes commit nothing")
    }

    func testCorruptStateFileIsNamedAndLeftAlone() throws {
        let ns = try TestNamespace()
        let state = NSTemporaryDirectory() + "flowctl-host-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) }
        try "{ not json".write(toFile: state + "/intent.json", atomically: true, encoding: .utf8)
        let result = try ns.run([flowctl, "status", "--state-dir", state, "--control-socket", state + "/none"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("\(state)/intent.json is corrupt"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: state + "/intent.json", encoding: .utf8), "{ not json")
    }
}

/// The daemon as a service: what systemd and its unit rely on.
final class ServiceHostTests: HostTestCase {
    /// control_group must work or fail: without CAP_CHOWN and outside the
    /// group, the daemon refuses to start and says what it needs.
    func testControlGroupThatCannotBeSetIsAnError() throws {
        let ns = try TestNamespace()
        let state = NSTemporaryDirectory() + "flowctl-host-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let result = try ns.run(["timeout", "10", "setpriv", "--bounding-set=-chown", "--inh-caps=-chown", "--",
                                 flowctl, "daemon", "--state-dir", state, "--control-socket", state + "/control.sock",
                                 "--control-group", "nogroup", "--metrics-address", ""])
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("give the control socket \(state)/control.sock to group nogroup: Operation not permitted"), result.stderr)
        XCTAssertTrue(result.stderr.contains("SupplementaryGroups=nogroup"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/control.sock.starting"), "nothing left behind")
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/control.sock"))
    }
}

extension ServiceHostTests {
    /// A datagram socket standing in for systemd's NOTIFY_SOCKET.
    final class NotifySocket {
        let path: String
        let fd: Int32
        init(directory: String) throws {
            path = directory + "/notify"
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw HostTierError.notRoot }
        }
        deinit { close(fd) }

        /// The next datagram, or nil after `seconds`.
        func receive(within seconds: Int32) -> String? {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, seconds * 1000) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
        }

        /// Datagrams until one contains `assignment`; the ones seen on the way.
        func wait(for assignment: String, within seconds: Int32) -> [String]? {
            var seen: [String] = []
            let deadline = Date().addingTimeInterval(TimeInterval(seconds))
            while Date() < deadline {
                guard let message = receive(within: 1) else { continue }
                seen.append(message)
                if message.split(separator: "\n").contains(Substring(assignment)) { return seen }
            }
            return nil
        }
    }

    /// Type=notify: READY=1 after the first pass, WATCHDOG=1 at half of
    /// WATCHDOG_USEC from the event loop, SIGHUP reloads the configuration
    /// (RELOADING=1, READY=1) without ending the daemon, SIGTERM says
    /// STOPPING=1 and exits 0. On any kernel: nothing is enabled.
    func testDaemonSpeaksToTheServiceManagerAndSurvivesSIGHUP() throws {
        let ns = try TestNamespace()
        let work = NSTemporaryDirectory() + "flowctl-svc-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let notify = try NotifySocket(directory: work)
        let config = work + "/flowctl.toml"
        try "resync_interval = 300\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try ChildProcess(["ip", "netns", "exec", ns.name, flowctl, "daemon", "--config", config,
                                       "--state-dir", work + "/state", "--control-socket", work + "/control.sock",
                                       "--metrics-address", ""],
                                      environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        defer { daemon.terminate() }

        let start = notify.wait(for: "READY=1", within: 20)
        XCTAssertNotNil(start, "no READY=1")
        XCTAssertTrue(start?.joined().contains("STATUS=0 bridge(s) enabled") == true, "\(start ?? [])")
        XCTAssertNotNil(notify.wait(for: "WATCHDOG=1", within: 5), "no watchdog ping")
        XCTAssertNotNil(notify.wait(for: "WATCHDOG=1", within: 5), "the watchdog pinged once only")

        try "resync_interval = 300\nlog_level = \"debug\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(daemon.processIdentifier, SIGHUP)
        let reload = notify.wait(for: "READY=1", within: 10)
        XCTAssertTrue(reload?.joined(separator: "\n").contains("RELOADING=1") == true, "\(reload ?? [])")
        XCTAssertTrue(daemon.isRunning, "SIGHUP ended the daemon")
        // A configuration that no longer parses is named; the running one stays.
        try "resync_interval = = 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(daemon.processIdentifier, SIGHUP)
        XCTAssertNotNil(notify.wait(for: "READY=1", within: 10))
        XCTAssertTrue(daemon.isRunning, "a bad configuration on SIGHUP ended the daemon")

        daemon.terminate()
        XCTAssertNotNil(notify.wait(for: "STOPPING=1", within: 10), "no STOPPING=1")
        let ended = daemon.finish()
        XCTAssertEqual(ended.status, 0)
        let log = ended.stderr
        XCTAssertTrue(log.contains("log_level changed; takes effect when the daemon restarts"), log)
        XCTAssertTrue(log.contains("configuration not reloaded; the running one stays: \(config):1:"), log)
        XCTAssertTrue(log.contains("reloaded"), log)
    }
}
