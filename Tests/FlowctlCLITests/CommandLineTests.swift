import ArgumentParser
@testable import FlowctlCLI
import FlowctlCore
import FlowctlTesting
import Foundation
import XCTest

/// The commands in-process against the fakes: parsing, output, bad input
/// leaving the (fake) kernel and the state directory as they were.
final class CommandLineTests: XCTestCase {
    var state: String!
    var backend: FakeRulesetBackend!
    var topology: FakeTopologySource!
    var stdout = ""
    var stderr = ""

    override func setUpWithError() throws {
        state = NSTemporaryDirectory() + "flowctl-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        backend = FakeRulesetBackend()
        topology = FakeTopologySource(Topology(links: [
            Link(index: 1, name: "lo", kind: .loopback),
            Link(index: 2, name: "eth0", kind: .physical),
            Link(index: 3, name: "br0", kind: .bridge),
            Link(index: 4, name: "vnet0", kind: .tun, masterIndex: 3),
            Link(index: 5, name: "veth1", kind: .veth, masterIndex: 3),
            Link(index: 6, name: "br0.10", kind: .vlan, lowerIndex: 3, vlanID: 10),
        ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])]))
        let edges = Edges(topology: topology, backend: backend,
                          conntrack: FakeConntrack(ConntrackSummary(entries: 10, offloaded: 7, hardwareOffloaded: 0,
                                                                    count: 90, max: 100)))
        Runtime.makeEdges = { edges }
        Runtime.useDaemon = false
        Runtime.standardOutput = { [unowned self] in stdout += $0 }
        Runtime.standardError = { [unowned self] in stderr += $0 }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: state)
        Runtime.makeEdges = Edges.linux
        Runtime.useDaemon = true
    }

    /// Parses and runs like main(); returns the exit code.
    @discardableResult
    func flowctl(_ arguments: [String], stateDir: String? = nil) -> Int32 {
        do {
            var command = try FlowctlCommand.parseAsRoot(arguments + ["--state-dir", stateDir ?? state])
            try command.run()
            return 0
        } catch {
            let code = FlowctlCommand.exitCode(for: error).rawValue
            if code != 0, !(error is ExitCode) { stderr += FlowctlCommand.message(for: error) + "\n" }
            return code
        }
    }

    func parse(_ arguments: [String]) -> String? {
        do {
            _ = try FlowctlCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return FlowctlCommand.message(for: error)
        }
    }

    func testParsing() throws {
        let command = try FlowctlCommand.parseAsRoot(["enable", "br0", "--uplink", "eth0", "--uplink", "bond0",
                                                      "--hw-offload", "off", "--state-dir", "/x"])
        let enable = try XCTUnwrap(command as? EnableCommand)
        XCTAssertEqual(enable.bridge, "br0")
        XCTAssertEqual(enable.uplinks, ["eth0", "bond0"])
        XCTAssertEqual(enable.hwOffload, .off)
        XCTAssertEqual(enable.state.stateDir, "/x")
        XCTAssertNotNil(parse(["enable", "br0", "--hw-offload", "sometimes"]))
        XCTAssertNotNil(parse(["enable"]))
        XCTAssertTrue(parse(["enable", "a/b"])?.contains("is not a valid interface name") ?? false)
        XCTAssertTrue(parse(["enable", "averyveryverylongname"])?.contains("is not a valid interface name") ?? false)
        XCTAssertTrue(parse(["enable", "br0", "--uplink", "br0"])?.contains("is the bridge itself") ?? false)
        XCTAssertTrue(parse(["enable", "br0", "--uplink", "e", "--uplink", "e"])?.contains("twice") ?? false)
        XCTAssertNotNil(parse(["frobnicate"]))
        XCTAssertTrue(try FlowctlCommand.parseAsRoot(["daemon", "--cleanup-on-exit"]) is DaemonCommand)
        XCTAssertTrue(try FlowctlCommand.parseAsRoot(["bench", "Scenarios/quickstart.toml"]) is BenchCommand)
    }

    func testEnableAppliesRealDevicesAndStoresIntent() throws {
        XCTAssertEqual(flowctl(["enable", "br0"]), 0, stderr)
        let table = try XCTUnwrap(backend.table(FlowctlNames.table))
        XCTAssertEqual(table.flowtables.first?.devices, ["eth0", "veth1", "vnet0"])
        XCTAssertEqual(table.sets.first?.elements, ["br0", "br0.10"])
        XCTAssertEqual(try IntentStore(directory: state).load().bridgeNames, ["br0"])
        XCTAssertTrue(stdout.contains("vnet0"), stdout)
        XCTAssertTrue(stdout.contains("port of br0"), stdout)
        XCTAssertTrue(stdout.contains("uplink of br0"), stdout)
        // Unchanged state sends nothing.
        let batches = backend.appliedBatches.count
        XCTAssertEqual(flowctl(["enable", "br0"]), 0)
        XCTAssertEqual(backend.appliedBatches.count, batches)
    }

    func assertRefused(_ arguments: [String], message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try backend.table(FlowctlNames.table)
        let intentBefore = try? Data(contentsOf: URL(fileURLWithPath: state + "/intent.json"))
        stderr = ""
        XCTAssertNotEqual(flowctl(arguments), 0, file: file, line: line)
        XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr, file: file, line: line)
        XCTAssertTrue(stderr.hasPrefix("flowctl: error: ") && stderr.contains(message), stderr, file: file, line: line)
        XCTAssertEqual(try backend.table(FlowctlNames.table), before, "kernel changed", file: file, line: line)
        XCTAssertEqual(try? Data(contentsOf: URL(fileURLWithPath: state + "/intent.json")), intentBefore,
                       "state changed", file: file, line: line)
    }

    /// `enable --json` and `disable --json` say what changed, for programs.
    func testEnableAndDisableReportChangesAsJSON() throws {
        XCTAssertEqual(flowctl(["enable", "br0", "--json"]), 0, stderr)
        let enabled = try JSONDecoder().decode(ChangeReport.self, from: Data(stdout.utf8))
        XCTAssertEqual(enabled.command, "enable")
        XCTAssertTrue(enabled.enabled)
        XCTAssertFalse(enabled.unchanged)
        XCTAssertEqual(enabled.matched, ["br0"])
        XCTAssertEqual(enabled.devices.map(\.name), ["eth0", "veth1", "vnet0"])
        XCTAssertEqual(enabled.changes.first, "add table inet flowctl { comment \"\(FlowctlNames.tableComment)\"; }")
        XCTAssertEqual(enabled.enabledBridges, ["br0"])
        stdout = ""
        XCTAssertEqual(flowctl(["enable", "br0", "--json"]), 0, stderr)
        XCTAssertTrue(try JSONDecoder().decode(ChangeReport.self, from: Data(stdout.utf8)).unchanged, "enabled twice: nothing sent")
        stdout = ""
        XCTAssertEqual(flowctl(["disable", "br0", "--json"]), 0, stderr)
        let disabled = try JSONDecoder().decode(ChangeReport.self, from: Data(stdout.utf8))
        XCTAssertFalse(disabled.enabled)
        XCTAssertEqual(disabled.changes, ["delete table inet flowctl"])
        XCTAssertEqual(disabled.enabledBridges, [])
        XCTAssertNil(try backend.table(FlowctlNames.table))
    }

    /// `plan BRIDGE` previews an enable: what it would list and send,
    /// nothing stored or sent; an unknown bridge is the same error as enable's.
    func testPlanPreviewsAnEnable() throws {
        XCTAssertEqual(flowctl(["plan", "br0", "--exclude-uplink", "eth0"]), 0, stderr)
        XCTAssertTrue(stdout.contains("# enabling br0 (preview: nothing is stored or sent)"), stdout)
        XCTAssertTrue(stdout.contains("vnet0"), stdout)
        XCTAssertFalse(stdout.contains("eth0 "), "excluded: \(stdout)")
        XCTAssertTrue(stdout.contains("add table inet flowctl"), stdout)
        XCTAssertTrue(backend.appliedBatches.isEmpty, "plan sent a batch")
        XCTAssertEqual(try IntentStore(directory: state).load(), Intent(), "plan stored the bridge")
        stderr = ""
        XCTAssertEqual(flowctl(["plan", "br9"]), 1)
        XCTAssertEqual(stderr, "flowctl: error: no such device: br9\n")
        XCTAssertNotNil(parse(["plan", "--uplink", "eth0"]), "options without a bridge are refused")
    }

    func testBadInputLeavesEverythingAsItWas() throws {
        try assertRefused(["enable", "br9"], message: "no such device: br9")
        try assertRefused(["enable", "vnet0"], message: "vnet0 is not a bridge (it is a tun device)")
        try assertRefused(["disable", "br0"], message: "br0 is not enabled")
        backend.supportsFlowtables = false
        try assertRefused(["enable", "br0"], message: "this kernel has no nftables flowtable support")
        backend.supportsFlowtables = true
        XCTAssertEqual(flowctl(["enable", "br0"]), 0)
        try "{ broken".write(toFile: state + "/intent.json", atomically: true, encoding: .utf8)
        try assertRefused(["status"], message: "\(state!)/intent.json is corrupt")
    }

    func testStatusJSONReportsDevicesFlowsAndConntrackWarning() throws {
        XCTAssertEqual(flowctl(["enable", "br0"]), 0)
        stdout = ""
        XCTAssertEqual(flowctl(["status", "--json"]), 0, stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["offloadedFlows"] as? Int, 7)
        XCTAssertEqual(json["flowtableDevices"] as? [String], ["eth0", "veth1", "vnet0"])
        let conntrack = try XCTUnwrap(json["conntrack"] as? [String: Any])
        XCTAssertNotNil(conntrack["warning"], "90 of 100 is past the 80% warning")
        let bridges = try XCTUnwrap(json["bridges"] as? [[String: Any]])
        let devices = try XCTUnwrap(bridges.first?["devices"] as? [[String: Any]])
        XCTAssertEqual(devices.count, 3)
        XCTAssertTrue(devices.allSatisfy { $0["inFlowtable"] as? Bool == true })
    }

    /// status reads only: drift is listed as pending, nothing is written,
    /// and a mistyped state dir does not remove the fast path.
    func testStatusNeverWrites() throws {
        XCTAssertEqual(flowctl(["enable", "br0"]), 0, stderr)
        XCTAssertEqual(flowctl(["status"]), 0, "in place: a health check passes\n\(stdout)\(stderr)")
        let batches = backend.appliedBatches.count
        let table = try backend.table(FlowctlNames.table)
        stdout = ""
        stderr = ""
        XCTAssertEqual(flowctl(["status"], stateDir: state + "/typo"), 3, "drift: a health check fails\n\(stderr)")
        XCTAssertTrue(stdout.contains("not fully in place: 1 change pending (`flowctl apply`)"), stdout)
        XCTAssertEqual(backend.appliedBatches.count, batches, "status sent a batch")
        XCTAssertEqual(try backend.table(FlowctlNames.table), table)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/typo"), "status created the state dir")
        XCTAssertTrue(stderr.contains("state directory \(state!)/typo does not exist"), stderr)
        XCTAssertTrue(stdout.contains("NOT in sync with the stored intent"), stdout)
        XCTAssertTrue(stdout.contains("delete table inet flowctl"), stdout)
        // apply refuses the typo, and applies the real state.
        stderr = ""
        XCTAssertNotEqual(flowctl(["apply"], stateDir: state + "/typo"), 0)
        XCTAssertTrue(stderr.contains("does not exist: no stored intent to apply"), stderr)
        XCTAssertEqual(backend.appliedBatches.count, batches, "apply of a typo sent a batch")
        XCTAssertEqual(flowctl(["apply"]), 0, stderr)
        XCTAssertEqual(backend.appliedBatches.count, batches, "nothing to change")
    }

    func testEnableByPatternStoresThePatternAndSaysWhatItMatches() throws {
        XCTAssertEqual(flowctl(["enable", "br*"]), 0, stderr)
        XCTAssertTrue(stdout.contains("br* (matches br0): fast path on"), stdout)
        XCTAssertEqual(try IntentStore(directory: state).load().bridgeNames, ["br*"])
        XCTAssertEqual(try backend.table(FlowctlNames.table)?.flowtables.first?.devices, ["eth0", "veth1", "vnet0"])
        stdout = ""
        XCTAssertEqual(flowctl(["enable", "virbr*"]), 0, stderr)
        XCTAssertTrue(stdout.contains("virbr* (no bridge matches yet)"), stdout)
        XCTAssertTrue(stderr.contains("pattern virbr* matches no bridge yet"), stderr)
        stdout = ""
        XCTAssertEqual(flowctl(["status"]), 0, stderr)
        XCTAssertTrue(stdout.contains("br0: enabled (pattern br*)"), stdout)
        XCTAssertTrue(stdout.contains("pattern virbr*: matches no bridge yet"), stdout)
        XCTAssertEqual(flowctl(["disable", "br*"]), 0, stderr)
        XCTAssertEqual(try IntentStore(directory: state).load().bridgeNames, ["virbr*"])
        XCTAssertNil(try backend.table(FlowctlNames.table)?.flowtables.first?.devices.first { $0 == "vnet0" })
    }

    func testEnableRefusesTheBridgeAsItsOwnUplink() throws {
        XCTAssertTrue(parse(["enable", "br0", "--uplink", "br0"])?.contains("uplink br0 is the bridge itself") ?? false)
        XCTAssertTrue(parse(["enable", "br0", "--uplink", "eth0", "--uplink", "eth0"])?.contains("named twice") ?? false)
    }

    func testPlanChangesNothing() throws {
        try IntentStore(directory: state).save(Intent(bridges: ["br0": BridgeIntent()]))
        XCTAssertEqual(flowctl(["plan"]), 0, stderr)
        XCTAssertTrue(stdout.contains("add flowtable inet flowctl fastpath"), stdout)
        XCTAssertTrue(stdout.contains("# resulting table:"), stdout)
        XCTAssertNil(try backend.table(FlowctlNames.table))
        XCTAssertTrue(backend.appliedBatches.isEmpty)
    }

    func testRefusedHardwareOffload() throws {
        // eth0 (uplink) and eth1 (br0's only port) claim hw-tc-offload; the kernel refuses it.
        topology.topology = Topology(links: [
            Link(index: 1, name: "lo", kind: .loopback),
            Link(index: 2, name: "eth0", kind: .physical, hwTCOffload: true),
            Link(index: 3, name: "br0", kind: .bridge),
            Link(index: 4, name: "eth1", kind: .physical, masterIndex: 3, hwTCOffload: true),
        ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])])
        backend.devicesRefusingHardwareOffload = ["eth0", "eth1"]
        let reason = "the kernel refused hardware offload on eth0, eth1: Operation not supported"

        XCTAssertEqual(flowctl(["enable", "br0", "--hw-offload", "on"]), 1)
        XCTAssertEqual(stderr, "flowctl: error: --hw-offload on: \(reason); nothing was changed (--hw-offload auto falls back to software)\n")
        XCTAssertNil(try backend.table(FlowctlNames.table))
        XCTAssertEqual(try IntentStore(directory: state).load(), Intent())

        XCTAssertEqual(flowctl(["enable", "br0", "--hw-offload", "auto"]), 0, stderr)
        XCTAssertTrue(stdout.contains("br0: fast path on, software (\(reason))"), stdout)
        XCTAssertEqual(try backend.table(FlowctlNames.table)?.flowtables.first?.hardwareOffload, false)
        stdout = ""
        XCTAssertEqual(flowctl(["status"]), 0, stderr)
        XCTAssertTrue(stdout.contains("br0: enabled, software fast path (\(reason))"), stdout)
        stdout = ""
        XCTAssertEqual(flowctl(["plan"]), 0, stderr)
        XCTAssertTrue(stdout.contains("# nothing to change"), stdout)
        XCTAssertTrue(stdout.contains("# offload: software (\(reason))"), stdout)
        XCTAssertEqual(backend.appliedBatches.count, 1, "status and plan changed nothing")
    }

    func testDoctorFailsNamingTheMissingOption() throws {
        backend.supportsFlowtables = false
        XCTAssertNotEqual(flowctl(["doctor"]), 0)
        XCTAssertTrue(stdout.contains("MISSING flowtables"), stdout)
        XCTAssertTrue(stdout.contains("CONFIG_NF_FLOW_TABLE"), stdout)
    }
}

/// Usage errors read like every other error: one `flowctl: error:` line,
/// then the usage; exit 64 (EX_USAGE).
final class UsageErrorTests: XCTestCase {
    func testUsageErrorsFollowTheErrorLine() throws {
        for (arguments, message) in [
            (["enable"], "flowctl: error: Missing expected argument '<bridge>'"),
            (["status", "--bogus"], "flowctl: error: Unknown option '--bogus'"),
            (["enable", "br0", "--hw-offload", "maybe"], "flowctl: error: The value 'maybe' is invalid for '--hw-offload <hw-offload>'"),
            (["frobnicate"], "flowctl: error: Unexpected argument 'frobnicate'"),
        ] {
            let outcome = try XCTUnwrap(FlowctlCommand.outcome(of: arguments), "\(arguments)")
            XCTAssertTrue(outcome.standardError.hasPrefix(message), outcome.standardError)
            XCTAssertTrue(outcome.standardError.contains("\nUsage: flowctl"), outcome.standardError)
            XCTAssertEqual(outcome.exitCode, 64)
        }
        XCTAssertNil(FlowctlCommand.outcome(of: ["--help"]), "help prints as usual")
        XCTAssertNil(FlowctlCommand.outcome(of: ["--version"]))
        XCTAssertNil(FlowctlCommand.outcome(of: ["enable", "br0"]), "a valid command line runs")
    }
}
