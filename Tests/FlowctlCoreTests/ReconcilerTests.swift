import FlowctlCore
import FlowctlTesting
import XCTest

final class ReconcilerTests: XCTestCase {
    func host() -> TopologyBuilder {
        var t = TopologyBuilder()
        t.add("eth0", .physical)
        t.add("br0", .bridge)
        t.add("vnet1", .tun, master: "br0")
        t.defaultRoute(via: "eth0")
        return t
    }

    let intent = Intent(bridges: ["br0": BridgeIntent()])

    func testAppliesOnceThenNothing() throws {
        let fake = FakeRulesetBackend()
        let reconciler = Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
        let first = try reconciler.reconcile(intent: intent)
        XCTAssertTrue(first.applied)
        XCTAssertEqual(fake.appliedBatches.count, 1)
        let second = try reconciler.reconcile(intent: intent)
        XCTAssertFalse(second.applied)
        XCTAssertTrue(second.batch.isEmpty)
        XCTAssertEqual(fake.appliedBatches.count, 1, "unchanged state must send nothing")
    }

    func testDryRunSendsNothing() throws {
        let fake = FakeRulesetBackend()
        let outcome = try Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
            .reconcile(intent: intent, dryRun: true)
        XCTAssertFalse(outcome.batch.isEmpty)
        XCTAssertFalse(outcome.applied)
        XCTAssertNil(try fake.table(FlowctlNames.table))
    }

    func testConcurrentRulesetChangeIsRetriedWithFreshState() throws {
        let fake = FakeRulesetBackend()
        var interfered = false
        fake.beforeApply = { backend in
            if !interfered {
                interfered = true
                backend.install(KernelTable(ref: TableRef(family: .ip, name: "other"), comment: nil))
            }
        }
        let outcome = try Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
            .reconcile(intent: intent)
        XCTAssertEqual(outcome.attempts, 2)
        XCTAssertTrue(outcome.applied)
        XCTAssertNotNil(try fake.table(FlowctlNames.table))
    }

    func testKernelWithoutFlowtablesFailsCleanly() throws {
        let fake = FakeRulesetBackend()
        fake.supportsFlowtables = false
        XCTAssertThrowsError(try Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
            .reconcile(intent: intent)) { error in
            guard case .flowtablesUnsupported = error as? ReconcileError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("CONFIG_NF_FLOW_TABLE"))
        }
        XCTAssertNil(try fake.table(FlowctlNames.table), "nothing may be left behind")
        XCTAssertTrue(fake.appliedBatches.isEmpty)
    }

    func testVanishedDeviceIsRetriedThenReportedAsUnstable() throws {
        let fake = FakeRulesetBackend()
        fake.existingDevices = ["eth0"]   // vnet1 is in the snapshot but gone from the "kernel"
        XCTAssertThrowsError(try Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
            .reconcile(intent: intent)) { error in
            guard case .unstable(let attempts, _) = error as? ReconcileError else { return XCTFail("\(error)") }
            XCTAssertEqual(attempts, 3)
        }
        XCTAssertNil(try fake.table(FlowctlNames.table))
    }

    func testWarnsAboutForwardChainsThatRunLater() throws {
        let fake = FakeRulesetBackend()
        fake.otherForwardChains = [
            ForwardChainInfo(table: TableRef(family: .inet, name: "firewalld"), chain: "filter_FORWARD", priority: 10),
            ForwardChainInfo(table: TableRef(family: .ip, name: "late"), chain: "fwd", priority: Int32.max),
        ]
        let outcome = try Reconciler(topology: FakeTopologySource(host().topology), backend: fake)
            .reconcile(intent: intent)
        XCTAssertEqual(outcome.laterForwardChains.map(\.chain), ["fwd"])
        XCTAssertTrue(outcome.warnings.contains { $0.contains("forward chain fwd of table ip late") })
    }

    func testFeatureProbesNeverCommit() throws {
        let fake = FakeRulesetBackend()
        for probe in FeatureProbe.all { XCTAssertTrue(probe.passes(on: fake), probe.name) }
        XCTAssertTrue(fake.appliedBatches.isEmpty)
        XCTAssertNil(try fake.table(FeatureProbe.probeTable))
        fake.supportsFlowtables = false
        XCTAssertFalse(FeatureProbe.flowtable.passes(on: fake))
        XCTAssertTrue(FeatureProbe.nfTables.passes(on: fake))
    }
}
