import FlowctlCore
import FlowctlTesting
import XCTest

final class DiffTests: XCTestCase {
    let differ = Differ()

    func plan(devices: [String], interfaces: [String] = ["br0"], hardware: Bool = false) -> Plan {
        var t = TopologyBuilder()
        t.add("br0", .bridge)
        for device in devices { t.add(device, .tun, master: "br0", hw: hardware) }
        for upper in interfaces where upper != "br0" { t.add(upper, .vlan, lower: "br0", vlan: 10) }
        let intent = Intent(bridges: ["br0": BridgeIntent(hwOffload: hardware ? .on : .auto)])
        return try! Planner().plan(intent: intent, topology: t.topology)
    }

    func desired(devices: [String], interfaces: [String] = ["br0"], hardware: Bool = false) -> DesiredRuleset {
        plan(devices: devices, interfaces: interfaces, hardware: hardware).desired!
    }

    /// Applies through the fake kernel and returns what it holds.
    func converge(_ fake: FakeRulesetBackend, to ruleset: DesiredRuleset?) throws -> NftBatch {
        let batch = try differ.diff(kernel: try fake.table(FlowctlNames.table), desired: ruleset)
        if !batch.isEmpty { try fake.apply(batch, generation: nil) }
        let again = try differ.diff(kernel: try fake.table(FlowctlNames.table), desired: ruleset)
        XCTAssertEqual(again.changes, [], "not converged after one batch")
        return batch
    }

    func testFreshHostGetsTheWholeTableInOneBatch() throws {
        let batch = try differ.diff(kernel: nil, desired: desired(devices: ["vnet1"]))
        XCTAssertEqual(batch.changes.count, 8)
        guard case .addTable = batch.changes.first, case .addFlowtable(let ft) = batch.changes[2] else {
            return XCTFail("unexpected order \(batch.changes)")
        }
        XCTAssertEqual(ft.devices, ["vnet1"])
    }

    func testUnchangedStateSendsNothing() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1", "vnet2"]))
        let batch = try differ.diff(kernel: try fake.table(FlowctlNames.table), desired: desired(devices: ["vnet1", "vnet2"]))
        XCTAssertTrue(batch.isEmpty)
    }

    func testDevicesChangeIncrementallyWithoutTouchingRulesOrFlowtable() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1", "vnet2"]))
        let batch = try converge(fake, to: desired(devices: ["vnet2", "vnet3"]))
        XCTAssertEqual(batch.changes, [
            .deleteFlowtableDevices(flowtable: "fastpath", devices: ["vnet1"]),
            .addFlowtableDevices(flowtable: "fastpath", devices: ["vnet3"]),
        ])
    }

    func testNewVLANUpperIsOneSetElement() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1"]))
        let batch = try converge(fake, to: desired(devices: ["vnet1"], interfaces: ["br0", "br0.10"]))
        XCTAssertEqual(batch.changes, [.addSetElements(set: "offload_ifaces", elements: ["br0.10"])])
    }

    func testHardwareFlagChangeRecreatesFlowtableAfterDroppingRules() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1"]))
        let batch = try converge(fake, to: desired(devices: ["vnet1"], hardware: true))
        let kinds = batch.changes.map { change -> String in
            switch change {
            case .deleteRule: "deleteRule"
            case .deleteFlowtable: "deleteFlowtable"
            case .addFlowtable: "addFlowtable"
            case .addRule: "addRule"
            default: "\(change)"
            }
        }
        XCTAssertEqual(kinds, ["deleteRule", "deleteRule", "deleteRule", "deleteRule", "deleteFlowtable",
                               "addFlowtable", "addRule", "addRule", "addRule", "addRule"])
        XCTAssertEqual(try fake.table(FlowctlNames.table)?.flowtables.first?.hardwareOffload, true)
    }

    func testTamperedRulesAreRebuilt() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1"]))
        var table = try XCTUnwrap(try fake.table(FlowctlNames.table))
        table.rules.removeLast()
        table.chains.append(KernelChain(name: "stray", type: "filter", hook: nil, priority: nil))
        fake.install(table)
        let batch = try converge(fake, to: desired(devices: ["vnet1"]))
        XCTAssertTrue(batch.changes.contains(.deleteChain("stray")))
        XCTAssertEqual(batch.changes.filter { if case .addRule = $0 { true } else { false } }.count, 4)
        XCTAssertFalse(batch.changes.contains { if case .addFlowtable = $0 { true } else { false } },
                       "rebuilding rules must not touch the flowtable")
    }

    /// `nft replace rule inet flowctl forward handle H iifname @offload_ifaces
    /// drop comment "flowctl/v2 iifname tcp"`: flowctl's comment, other content.
    func testRuleReplacedUnderItsOwnCommentIsRebuilt() throws {
        let fake = FakeRulesetBackend()
        let ruleset = desired(devices: ["vnet1"])
        _ = try converge(fake, to: ruleset)
        let before = try XCTUnwrap(try fake.table(FlowctlNames.table))
        let tampered = try XCTUnwrap(before.rules.first)
        XCTAssertEqual(tampered.comment, "flowctl/v2 iifname tcp")
        XCTAssertTrue(fake.replaceRule(comment: "flowctl/v2 iifname tcp",
                                       expressions: ["meta load iifname => reg 1", "lookup reg 1 set offload_ifaces",
                                                     "immediate reg 0 drop"]))
        let kernel = try XCTUnwrap(try fake.table(FlowctlNames.table))
        let batch = try converge(fake, to: ruleset)
        XCTAssertEqual(batch.changes, before.rules.map { .deleteRule(chain: $0.chain, handle: $0.handle) }
                       + ruleset.rules.map(NftChange.addRule),
                       "the rules are rebuilt in order; nothing else is touched")
        XCTAssertEqual(try fake.table(FlowctlNames.table)?.rules.map(\.expressions), ruleset.rules.map(\.expressions))

        let plan = plan(devices: ["vnet1"])
        XCTAssertEqual(ChangeLog.repairs(in: batch, desired: ruleset, kernel: kernel), [
            "rule \"flowctl/v2 iifname tcp\" (handle \(tampered.handle)) repaired: its content was not flowctl's; the kernel had [ meta load iifname => reg 1 ] [ lookup reg 1 set offload_ifaces ] [ immediate reg 0 drop ]",
        ])
        let lines = ChangeLog.lines(for: batch, plan: plan, previous: plan, kernel: kernel)
        XCTAssertEqual(lines.first, ChangeLog.repairs(in: batch, desired: ruleset, kernel: kernel).first)
        XCTAssertEqual(lines[1], "rule \(before.rules[1].handle) of chain forward deleted")
        XCTAssertEqual(ChangeLog.repairs(in: batch, desired: ruleset, kernel: before), [],
                       "rules deleted with intact content are no repair")
    }

    func testRuleWithUnreadContentIsNotTakenForFlowctls() throws {
        let fake = FakeRulesetBackend()
        let ruleset = desired(devices: ["vnet1"])
        _ = try converge(fake, to: ruleset)
        var table = try XCTUnwrap(try fake.table(FlowctlNames.table))
        XCTAssertTrue(try differ.diff(kernel: table, desired: ruleset).isEmpty, "flowctl's own rules are kept")
        table.rules[3].expressions = nil
        XCTAssertEqual(try differ.diff(kernel: table, desired: ruleset).changes.count, 8)
        table.rules[3].expressions = ruleset.rules[2].expressions  // another of flowctl's rules
        XCTAssertEqual(try differ.diff(kernel: table, desired: ruleset).changes.count, 8)
    }

    func testOffloadRuleExpressionsSpellDirectionProtocolSetAndFlowtable() {
        let rule = OffloadRule(chain: "forward", direction: .output, l4proto: .udp, interfaceSet: "s", flowtable: "f")
        XCTAssertEqual(rule.expressions, [
            "meta load oifname => reg 1",
            "lookup reg 1 set s",
            "ct load direction => reg 1",
            "cmp eq reg 1 0x00000000",
            "meta load l4proto => reg 1",
            "cmp eq reg 1 0x00000011",
            "counter",
            "flow_offload flowtable f",
        ])
    }

    func testChainWithWrongPriorityIsRecreated() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1"]))
        var table = try XCTUnwrap(try fake.table(FlowctlNames.table))
        table.chains[0].priority = 0
        fake.install(table)
        let batch = try converge(fake, to: desired(devices: ["vnet1"]))
        XCTAssertEqual(batch.changes.first, .deleteChain("forward"))
    }

    func testDisablingLastBridgeDeletesTheTable() throws {
        let fake = FakeRulesetBackend()
        _ = try converge(fake, to: desired(devices: ["vnet1"]))
        let batch = try converge(fake, to: nil)
        XCTAssertEqual(batch.changes, [.deleteTable(FlowctlNames.table)])
        XCTAssertNil(try fake.table(FlowctlNames.table))
        XCTAssertTrue(try differ.diff(kernel: nil, desired: nil).isEmpty)
    }

    func testForeignTableWithOurNameIsRefused() {
        let foreign = KernelTable(ref: FlowctlNames.table, comment: nil)
        XCTAssertThrowsError(try differ.diff(kernel: foreign, desired: desired(devices: []))) {
            XCTAssertEqual($0 as? DiffError, .foreignTable(FlowctlNames.table))
        }
        XCTAssertThrowsError(try differ.diff(kernel: foreign, desired: nil))
    }
}
