@testable import FlowctlDaemon
import FlowctlCore
import FlowctlTesting
import Foundation
import Logging
import XCTest

/// The daemon's state machine against the fakes: events in, smallest
/// batches out, resyncs when events are lost or a pass fails.
final class SyncEngineTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "flowctl-engine-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func links(ports: Int) -> [Link] {
        var links = [
            Link(index: 1, name: "lo", kind: .loopback),
            Link(index: 2, name: "eth0", kind: .physical),
            Link(index: 3, name: "br0", kind: .bridge),
        ]
        for port in 0..<ports {
            links.append(Link(index: Int32(10 + port), name: "vnet\(port)", kind: .tun, masterIndex: 3))
        }
        return links
    }

    func topology(ports: Int) -> Topology {
        Topology(links: links(ports: ports), routes: [
            Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2]),
        ])
    }

    func makeEngine(ports: Int = 2, enabled: Bool = true) throws -> (SyncEngine, FakeTopologySource, FakeRulesetBackend) {
        let store = IntentStore(directory: directory)
        if enabled { try store.save(Intent(bridges: ["br0": BridgeIntent()])) }
        let source = FakeTopologySource(topology(ports: ports))
        let backend = FakeRulesetBackend()
        let engine = try SyncEngine(topologySource: source, backend: backend, store: store,
                                    logger: Logger(label: "test"), ownPID: 4242)
        return (engine, source, backend)
    }

    func flowtableDevices(_ backend: FakeRulesetBackend) throws -> [String] {
        try XCTUnwrap(backend.table(FlowctlNames.table)?.flowtables.first?.devices)
    }

    func testStartAppliesStoredIntentThenIdles() throws {
        let (engine, _, backend) = try makeEngine()
        XCTAssertTrue(engine.hasWork())
        let outcome = try XCTUnwrap(engine.step())
        XCTAssertTrue(outcome.applied)
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
        XCTAssertFalse(engine.hasWork(), "nothing pending after the first pass")
        XCTAssertNil(engine.step())
        XCTAssertEqual(backend.appliedBatches.count, 1)
    }

    func testNewPortEventAddsOnlyThatDevice() throws {
        let (engine, _, backend) = try makeEngine()
        engine.step()
        engine.receive([TopologyEvent.link(Link(index: 40, name: "vnet7", kind: .tun, masterIndex: 3))])
        let outcome = try XCTUnwrap(engine.step())
        XCTAssertEqual(outcome.batch.changes, [.addFlowtableDevices(flowtable: "fastpath", devices: ["vnet7"])])
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1", "vnet7"])
        XCTAssertEqual(engine.statistics.resyncs, 1, "an event is applied to the cached topology, no dump")
    }

    func testBurstIsOneBatch() throws {
        let (engine, _, backend) = try makeEngine(ports: 0)
        engine.step()
        let before = backend.appliedBatches.count
        engine.receive((0..<50).map {
            TopologyEvent.link(Link(index: Int32(100 + $0), name: "tap\($0)", kind: .tun, masterIndex: 3))
        })
        engine.step()
        XCTAssertEqual(backend.appliedBatches.count, before + 1)
        XCTAssertEqual(try flowtableDevices(backend).count, 51)
    }

    func testRemovedAndMovedPortsLeaveTheFlowtable() throws {
        let (engine, _, backend) = try makeEngine()
        engine.step()
        engine.receive([
            TopologyEvent.linkRemoved(index: 10, name: "vnet0"),
            // vnet1 moves to another (not enabled) bridge.
            .link(Link(index: 5, name: "br1", kind: .bridge)),
            .link(Link(index: 11, name: "vnet1", kind: .tun, masterIndex: 5)),
        ])
        let outcome = try XCTUnwrap(engine.step())
        XCTAssertEqual(outcome.batch.changes, [.deleteFlowtableDevices(flowtable: "fastpath", devices: ["vnet0", "vnet1"])])
        XCTAssertEqual(try flowtableDevices(backend), ["eth0"])
    }

    func testLostEventsForceAFullDump() throws {
        let (engine, source, backend) = try makeEngine()
        engine.step()
        // The host changed while notifications were dropped.
        source.topology = topology(ports: 3)
        engine.receive([TopologyEvent.lost(reason: "ENOBUFS")])
        engine.step()
        XCTAssertEqual(engine.statistics.resyncs, 2)
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1", "vnet2"])
    }

    func testForeignCommitDeletingTheTableIsRepairedAndOwnCommitsIgnored() throws {
        let (engine, _, backend) = try makeEngine()
        engine.step()
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 9, pid: 4242, tables: [FlowctlNames.table]))])
        XCTAssertFalse(engine.hasWork(), "our own commit needs no pass")
        backend.removeTable(FlowctlNames.table)  // `nft flush ruleset`
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 10, pid: 777, tables: [FlowctlNames.table]))])
        XCTAssertTrue(engine.hasWork())
        let outcome = try XCTUnwrap(engine.step())
        XCTAssertTrue(outcome.applied)
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
    }

    /// `nft replace rule ... drop comment "flowctl/v2 iifname tcp"` by another
    /// process: its commit makes the engine read the table again (not trust
    /// its cached view) and put flowctl's rule back, without the automatic
    /// re-evaluation (which recreates the flowtable and its rules anyway).
    func testRuleReplacedUnderItsCommentByAnotherProcessIsRepaired() throws {
        let store = IntentStore(directory: directory)
        try store.save(Intent(bridges: ["br0": BridgeIntent()]))
        let backend = FakeRulesetBackend()
        let engine = try SyncEngine(topologySource: FakeTopologySource(topology(ports: 2)), backend: backend,
                                    store: store, logger: Logger(label: "test"), ownPID: 4242,
                                    coherence: .init(automatic: false))
        let first = try XCTUnwrap(engine.step())
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 2, pid: 4242, tables: [FlowctlNames.table]))])
        XCTAssertFalse(engine.hasWork())
        let wanted = try XCTUnwrap(first.plan.desired?.rules)

        let handle = try XCTUnwrap(backend.table(FlowctlNames.table)?.rules.first { $0.comment == "flowctl/v2 iifname tcp" }?.handle)
        XCTAssertTrue(backend.replaceRule(comment: "flowctl/v2 iifname tcp", expressions: ["immediate reg 0 drop"]))
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 3, pid: 777, tables: [FlowctlNames.table]))])
        let outcome = try XCTUnwrap(engine.step())
        XCTAssertTrue(outcome.applied)
        XCTAssertEqual(outcome.batch.changes.filter { if case .addRule = $0 { true } else { false } }.count, 4)
        XCTAssertEqual(try backend.table(FlowctlNames.table)?.rules.map(\.expressions), wanted.map(\.expressions))
        XCTAssertEqual(ChangeLog.repairs(in: outcome.batch, desired: outcome.plan.desired, kernel: outcome.kernelBefore),
                       ["rule \"flowctl/v2 iifname tcp\" (handle \(handle)) repaired: its content was not flowctl's; the kernel had [ immediate reg 0 drop ]"])
        XCTAssertEqual(engine.statistics.reevaluations, 0)

        // Its own commit: nothing more to do; the next foreign commit finds the table intact.
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 4, pid: 4242, tables: [FlowctlNames.table]))])
        XCTAssertFalse(engine.hasWork())
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 5, pid: 777, tables: [FlowctlNames.table]))])
        XCTAssertEqual(engine.step()?.batch.isEmpty, true)
    }

    func testFailedPassBacksOffAndResyncs() throws {
        let (engine, _, backend) = try makeEngine()
        backend.supportsFlowtables = false
        // One instant for the failure and the check: the backoff is
        // milliseconds, which a slow run (the thread sanitizer) can outlast.
        let failed = ContinuousClock.now
        XCTAssertNil(engine.step(now: failed))
        XCTAssertEqual(engine.statistics.errors, 1)
        XCTAssertFalse(engine.hasWork(now: failed), "backing off right after a failure")
        let later = failed + .seconds(6)
        XCTAssertTrue(engine.hasWork(now: later))
        backend.supportsFlowtables = true
        XCTAssertNotNil(engine.step(now: later))
        XCTAssertEqual(engine.statistics.resyncs, 2, "the retry starts from a full dump")
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
    }

    func testRestartAdoptsExistingTableWithoutAChange() throws {
        let (first, source, backend) = try makeEngine()
        first.step()
        let batches = backend.appliedBatches.count
        let second = try SyncEngine(topologySource: source, backend: backend, store: IntentStore(directory: directory),
                                    logger: Logger(label: "test"), ownPID: 4343)
        let outcome = try XCTUnwrap(second.step())
        XCTAssertTrue(outcome.batch.isEmpty)
        XCTAssertEqual(backend.appliedBatches.count, batches)
    }

    func testControlChangePersistsIntentAndRejectsUnknownBridge() throws {
        let (engine, _, backend) = try makeEngine(enabled: false)
        engine.step()
        XCTAssertNil(try backend.table(FlowctlNames.table))
        XCTAssertThrowsError(try engine.change(required: ["br9"]) { $0.bridges["br9"] = BridgeIntent() })
        XCTAssertEqual(try IntentStore(directory: directory).load(), Intent(), "a refused change stores nothing")
        _ = try engine.change(required: ["br0"]) { $0.bridges["br0"] = BridgeIntent() }
        XCTAssertEqual(try IntentStore(directory: directory).load().bridgeNames, ["br0"])
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
    }

    // MARK: hardware offload the kernel refuses

    /// eth0 the uplink, eth1 a port of br0, eth2 a port of br1: NICs that
    /// claim hw-tc-offload; the kernel refuses `flags offload` for all (netdevsim).
    func makeHardwareEngine(bridges: [String] = ["br0"]) throws
        -> (SyncEngine, FakeRulesetBackend, attempts: () -> Int)
    {
        let store = IntentStore(directory: directory)
        try store.save(Intent(bridges: Dictionary(uniqueKeysWithValues: bridges.map { ($0, BridgeIntent()) })))
        let source = FakeTopologySource(Topology(links: [
            Link(index: 1, name: "lo", kind: .loopback),
            Link(index: 2, name: "eth0", kind: .physical, hwTCOffload: true),
            Link(index: 3, name: "br0", kind: .bridge),
            Link(index: 4, name: "eth1", kind: .physical, masterIndex: 3, hwTCOffload: true),
            Link(index: 5, name: "br1", kind: .bridge),
            Link(index: 6, name: "eth2", kind: .physical, masterIndex: 5, hwTCOffload: true),
            // Not a port yet (joins br0 later): a device the host has.
            Link(index: 41, name: "eth3", kind: .physical, hwTCOffload: true),
        ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])]))
        let backend = FakeRulesetBackend()
        backend.devicesRefusingHardwareOffload = ["eth0", "eth1", "eth2", "eth3"]
        var attempts = 0
        backend.beforeApply = { _ in attempts += 1 }
        let engine = try SyncEngine(topologySource: source, backend: backend, store: store,
                                    logger: Logger(label: "test"), ownPID: 4242)
        return (engine, backend, { attempts })
    }

    func testRefusedHardwareIsRememberedAcrossPassesWithoutRecreatingTheFlowtable() throws {
        let (engine, backend, attempts) = try makeHardwareEngine()
        let first = try XCTUnwrap(engine.step())
        XCTAssertTrue(first.applied)
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 1)
        XCTAssertEqual(engine.hardwareRefusal?.devices, ["eth0", "eth1"])
        XCTAssertEqual(first.plan.offload?.reason, "the kernel refused hardware offload on eth0, eth1: Operation not supported")
        XCTAssertEqual(try backend.table(FlowctlNames.table)?.flowtables.first?.hardwareOffload, false)
        XCTAssertEqual(attempts(), 2)

        // The port leaves and comes back, a tap joins and leaves: each pass
        // moves devices only, and never asks for hardware again.
        let port = Link(index: 4, name: "eth1", kind: .physical, masterIndex: 3, hwTCOffload: true)
        var unplugged = port
        unplugged.masterIndex = nil
        let passes: [(TopologyEvent, [NftChange])] = [
            (.link(unplugged), [.deleteFlowtableDevices(flowtable: "fastpath", devices: ["eth1"])]),
            (.link(port), [.addFlowtableDevices(flowtable: "fastpath", devices: ["eth1"])]),
            (.link(Link(index: 40, name: "tap0", kind: .tun, masterIndex: 3)),
             [.addFlowtableDevices(flowtable: "fastpath", devices: ["tap0"])]),
            (.linkRemoved(index: 40, name: "tap0"), [.deleteFlowtableDevices(flowtable: "fastpath", devices: ["tap0"])]),
        ]
        for (event, changes) in passes {
            engine.receive([event])
            let outcome = try XCTUnwrap(engine.step())
            XCTAssertEqual(outcome.batch.changes, changes, "\(event)")
        }
        XCTAssertEqual(attempts(), 2 + passes.count, "no refused batch in between")
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 1)
        XCTAssertEqual(engine.lastOutcome?.plan.offload?.reason, first.plan.offload?.reason)

        // A full resync reads the same devices: still nothing to do.
        engine.requestResync(.requested)
        XCTAssertEqual(try XCTUnwrap(engine.step()).batch.changes, [])
        XCTAssertEqual(attempts(), 2 + passes.count)

        // A device beyond the refused set: hardware is asked for once more,
        // refused, and the software flowtable just gains the device.
        engine.receive([TopologyEvent.link(Link(index: 41, name: "eth3", kind: .physical, masterIndex: 3,
                                                hwTCOffload: true))])
        let grown = try XCTUnwrap(engine.step())
        XCTAssertEqual(grown.batch.changes, [.addFlowtableDevices(flowtable: "fastpath", devices: ["eth3"])])
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 2)
        XCTAssertEqual(engine.hardwareRefusal?.devices, ["eth0", "eth1", "eth3"])
        XCTAssertFalse(backend.appliedBatches.flatMap(\.changes).contains { if case .deleteFlowtable = $0 { true } else { false } },
                       "the flowtable was never recreated")
    }

    func testEnableAsksForHardwareAgainAndDisableDoesNot() throws {
        let (engine, _, attempts) = try makeHardwareEngine(bridges: ["br0", "br1"])
        engine.step()
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 1)
        XCTAssertEqual(engine.hardwareRefusal?.devices, ["eth0", "eth1", "eth2"])
        let before = attempts()
        let disabled = try engine.change(required: []) { $0.bridges["br1"] = nil }
        XCTAssertEqual(disabled.outcome.batch.changes, [
            .deleteSetElements(set: "offload_ifaces", elements: ["br1"]),
            .deleteFlowtableDevices(flowtable: "fastpath", devices: ["eth2"]),
        ])
        XCTAssertEqual(attempts(), before + 1)
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 1)
        let enabled = try engine.change(required: ["br1"]) { $0.bridges["br1"] = BridgeIntent() }
        XCTAssertEqual(enabled.outcome.batch.changes, [
            .addSetElements(set: "offload_ifaces", elements: ["br1"]),
            .addFlowtableDevices(flowtable: "fastpath", devices: ["eth2"]),
        ])
        XCTAssertTrue(enabled.outcome.fellBackToSoftware, "an enable asks the kernel again")
        XCTAssertEqual(engine.statistics.hardwareFallbacks, 2)
        XCTAssertEqual(attempts(), before + 3)
    }

    func testChangeLogNamesEachDeviceAndReason() throws {
        let (engine, _, _) = try makeEngine()
        let first = try XCTUnwrap(engine.step())
        engine.receive([TopologyEvent.link(Link(index: 40, name: "vnet7", kind: .tun, masterIndex: 3))])
        let second = try XCTUnwrap(engine.step())
        let lines = ChangeLog.lines(for: second.batch, plan: second.plan, previous: first.plan)
        XCTAssertEqual(lines, ["vnet7 added to flowtable: port of br0"])
        engine.receive([TopologyEvent.linkRemoved(index: 40, name: "vnet7")])
        let third = try XCTUnwrap(engine.step())
        XCTAssertEqual(ChangeLog.lines(for: third.batch, plan: third.plan, previous: second.plan),
                       ["vnet7 removed from flowtable: was port of br0"])
    }
}

final class DaemonConfigurationTests: XCTestCase {
    func testFullFileAndDefaults() throws {
        let configuration = try DaemonConfiguration.parse("""
            state_dir = "/srv/flowctl"
            control_group = "flowctl"
            metrics_address = "[::1]:9464"
            resync_interval = 60
            cleanup_on_exit = true
            """, path: "f.toml")
        XCTAssertEqual(configuration.stateDir, "/srv/flowctl")
        XCTAssertEqual(configuration.controlGroup, "flowctl")
        XCTAssertEqual(configuration.metricsAddress, "[::1]:9464")
        XCTAssertEqual(configuration.resyncInterval, 60)
        XCTAssertTrue(configuration.cleanupOnExit)
        XCTAssertEqual(configuration.controlSocket, ControlProtocol.defaultSocketPath)
        XCTAssertEqual(try DaemonConfiguration.parse("", path: "e.toml"), DaemonConfiguration())
    }

    func testSyntaxErrorNamesFileAndLine() {
        XCTAssertThrowsError(try DaemonConfiguration.parse("state_dir = \"/x\"\nresync_interval = = 3\n", path: "bad.toml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("bad.toml:2:"), "\(error)")
        }
    }

    /// The fuzzer's input (scripts/fuzz daemon-configuration): a replacement
    /// character in a table header aborted the process inside toml++.
    func testNonASCIIInATableHeaderIsASyntaxError() {
        let text = "log_level = \"info\"\nresync_interval = 300\n\n[\u{FFFD}bridge]]\nname = \"virbr*\"\n"
        XCTAssertThrowsError(try DaemonConfiguration.parse(text, path: "fuzz.toml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("fuzz.toml:4:2:"), "\(error)")
            XCTAssertTrue("\(error)".contains("U+FFFD outside a string or comment"), "\(error)")
        }
    }

    func testUnknownKeyAndWrongTypeAreRefused() {
        XCTAssertThrowsError(try DaemonConfiguration.parse("resync = 3", path: "u.toml")) { error in
            XCTAssertTrue("\(error)".contains("unknown key \"resync\""), "\(error)")
        }
        for (text, message) in [
            ("cleanup_on_exit = \"yes\"", "t.toml: cleanup_on_exit: wrong type (string), expected true or false"),
            ("resync_interval = \"60\"", "t.toml: resync_interval: wrong type (string), expected a number"),
            ("[[bridge]]\nname = \"br0\"\nuplinks = \"eth0\"", "t.toml: bridge 1: uplinks: wrong type (string), expected a list of device names"),
            ("[[bridge]]\nname = \"br0\"\nuplinks = [1]", "t.toml: bridge 1: uplinks: wrong type (array), expected a list of device names"),
        ] {
            XCTAssertThrowsError(try DaemonConfiguration.parse(text, path: "t.toml"), text) { error in
                XCTAssertEqual("\(error)", message)
            }
        }
        XCTAssertThrowsError(try DaemonConfiguration.parse("resync_interval = -1", path: "n.toml"))
    }

    func testDeclaredBridgesWithPatternsAndExclusions() throws {
        let configuration = try DaemonConfiguration.parse("""
            [[bridge]]
            name = "virbr*"
            exclude_uplinks = ["wg*", "stor0"]

            [[bridge]]
            name = "br0"
            uplinks = ["eth1"]
            hw_offload = "off"
            """, path: "b.toml")
        XCTAssertEqual(configuration.bridges, [
            "virbr*": BridgeIntent(excludedUplinks: ["wg*", "stor0"]),
            "br0": BridgeIntent(uplinks: ["eth1"], hwOffload: .off),
        ])
        XCTAssertEqual(configuration.declaredIntent.bridgeNames, ["br0", "virbr*"])
    }

    /// Examples/flowctl.toml parses as shipped (the defaults) and with its
    /// commented [[bridge]] example turned on.
    func testExampleFileParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Examples/flowctl.toml").standardized.path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(try DaemonConfiguration.parse(text, path: path), DaemonConfiguration())
        let enabled = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            for prefix in ["# # ", "# [[bridge]]", "# name", "# exclude_uplinks"] where line.hasPrefix(prefix) {
                return String(line.dropFirst(prefix.hasPrefix("# # ") ? 4 : 2))
            }
            return String(line)
        }.joined(separator: "\n")
        let configuration = try DaemonConfiguration.parse(enabled, path: path)
        XCTAssertEqual(configuration.bridges, ["virbr*": BridgeIntent(uplinks: ["eth0"], hwOffload: .auto,
                                                                       excludedUplinks: ["wg*"])])
    }

    func testBadDeclaredBridgesAreRefusedByName() {
        let cases: [(String, String)] = [
            ("[[bridge]]\nuplinks = [\"eth0\"]\n", "name"),
            ("[[bridge]]\nname = \"br0\"\nexclude = [\"x\"]\n", "bridge 1: unknown key \"exclude\""),
            ("[[bridge]]\nname = \"br0\"\n[[bridge]]\nname = \"br0\"\n", "br0 is declared twice"),
            ("[[bridge]]\nname = \"br0\"\nuplinks = [\"br0\"]\n", "uplink br0 is the bridge itself"),
            ("[[bridge]]\nname = \"a/b\"\n", "not a valid interface name"),
            ("[[bridge]]\nname = \"br0\"\nhw_offload = \"maybe\"\n", "hw_offload"),
            ("bridge = \"br0\"\n", "[[bridge]]"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try DaemonConfiguration.parse(text, path: "d.toml"), text) { error in
                XCTAssertTrue("\(error)".hasPrefix("d.toml") && "\(error)".contains(expected), "\(text): \(error)")
            }
        }
    }
}

final class ControlProtocolTests: XCTestCase {
    func testRequestWireFormatIsStable() throws {
        let request = ControlRequest(command: .enable, bridge: "br0", uplinks: ["eth0"], hwOffload: .off)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        XCTAssertEqual(String(decoding: try encoder.encode(request), as: UTF8.self),
                       #"{"bridge":"br0","command":"enable","hwOffload":"off","uplinks":["eth0"],"version":1}"#)
        let decoded = try JSONDecoder().decode(ControlRequest.self, from: Data(#"{"version":1,"command":"status"}"#.utf8))
        XCTAssertEqual(decoded.command, .status)
        XCTAssertNil(decoded.bridge)
    }

    func testNoDaemonMeansNil() throws {
        XCTAssertNil(try ControlClient.send(ControlRequest(command: .status),
                                            socketPath: NSTemporaryDirectory() + "no-such-\(UUID().uuidString).sock"))
    }
}

final class CoherenceConfigurationTests: XCTestCase {
    func testCoherenceKeys() throws {
        let configuration = try DaemonConfiguration.parse("""
            coherence_automatic = false
            coherence_coalesce_ms = 5
            coherence_min_interval_ms = 1000.5
            """, path: "c.toml")
        XCTAssertEqual(configuration.coherence, .init(automatic: false, coalesce: .milliseconds(5),
                                                      minInterval: .microseconds(1_000_500)))
        XCTAssertEqual(DaemonConfiguration().coherence, .init())
        XCTAssertThrowsError(try DaemonConfiguration.parse("coherence_coalesce_ms = -1", path: "n.toml")) {
            XCTAssertTrue("\($0)".contains("coherence_coalesce_ms must be 0 to 10000"), "\($0)")
        }
        XCTAssertThrowsError(try DaemonConfiguration.parse("coherence_automatic = 3", path: "t.toml"))
    }
}
