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

    // MARK: hardware offload the kernel refuses

    /// Two NICs that claim hw-tc-offload (eth0 the uplink, eth1 br0's port).
    func hardwareHost() -> TopologyBuilder {
        var t = TopologyBuilder()
        t.add("eth0", .physical, hw: true)
        t.add("br0", .bridge)
        t.add("eth1", .physical, master: "br0", hw: true)
        t.defaultRoute(via: "eth0")
        return t
    }

    /// A fake kernel whose NICs refuse `flags offload`, counting every batch sent.
    func refusingKernel(_ devices: Set<String> = ["eth0", "eth1"]) -> (FakeRulesetBackend, () -> Int) {
        let fake = FakeRulesetBackend()
        fake.devicesRefusingHardwareOffload = devices
        var sent = 0
        fake.beforeApply = { _ in sent += 1 }
        return (fake, { sent })
    }

    func testRefusedHardwareFallsBackToSoftwareInTheSameCall() throws {
        let (fake, sent) = refusingKernel()
        let reconciler = Reconciler(topology: FakeTopologySource(hardwareHost().topology), backend: fake)
        let outcome = try reconciler.reconcile(intent: intent)
        XCTAssertTrue(outcome.applied)
        XCTAssertTrue(outcome.fellBackToSoftware)
        XCTAssertEqual(sent(), 2, "the refused hardware batch, then the software one")
        XCTAssertEqual(outcome.plan.offload?.description,
                       "software (the kernel refused hardware offload on eth0, eth1: Operation not supported)")
        XCTAssertEqual(outcome.hardwareRefusal?.devices, ["eth0", "eth1"])
        let flowtable = try XCTUnwrap(fake.table(FlowctlNames.table)?.flowtables.first)
        XCTAssertFalse(flowtable.hardwareOffload)
        XCTAssertEqual(flowtable.devices, ["eth0", "eth1"])

        // The refusal passed back in: no new attempt, nothing to change.
        let again = try reconciler.reconcile(intent: intent, hardwareRefusal: outcome.hardwareRefusal)
        XCTAssertTrue(again.batch.isEmpty)
        XCTAssertFalse(again.fellBackToSoftware)
        XCTAssertEqual(again.hardwareRefusal, outcome.hardwareRefusal)
        XCTAssertEqual(again.plan.offload?.reason, outcome.plan.offload?.reason)
        XCTAssertEqual(sent(), 2)
        // Without it (a one-shot command) hardware is asked for once more; the
        // refused batch changes nothing and the flowtable is not recreated.
        let oneShot = try reconciler.reconcile(intent: intent)
        XCTAssertTrue(oneShot.fellBackToSoftware)
        XCTAssertTrue(oneShot.batch.isEmpty)
        XCTAssertEqual(fake.appliedBatches.count, 1)
    }

    func testHwOffloadOnRefusedIsOneLineNamingTheDevicesAndLeavesNothing() throws {
        let (fake, _) = refusingKernel()
        let on = Intent(bridges: ["br0": BridgeIntent(hwOffload: .on)])
        XCTAssertThrowsError(try Reconciler(topology: FakeTopologySource(hardwareHost().topology), backend: fake)
            .reconcile(intent: on)) { error in
            guard case .hardwareOffloadRefused(let devices, _) = error as? ReconcileError else { return XCTFail("\(error)") }
            XCTAssertEqual(devices, ["eth0", "eth1"])
            XCTAssertEqual("\(error)", "--hw-offload on: the kernel refused hardware offload on eth0, eth1: Operation not supported; nothing was changed (--hw-offload auto falls back to software)")
        }
        XCTAssertNil(try fake.table(FlowctlNames.table), "nothing may be left behind")
        XCTAssertTrue(fake.appliedBatches.isEmpty)
    }

    func testDeviceRefusedByAHardwareFlowtableFallsBackForAll() throws {
        let (fake, _) = refusingKernel([])
        var t = hardwareHost()
        let source = FakeTopologySource(t.topology)
        let reconciler = Reconciler(topology: source, backend: fake)
        XCTAssertEqual(try reconciler.reconcile(intent: intent).plan.offload?.hardware, true)
        XCTAssertEqual(try fake.table(FlowctlNames.table)?.flowtables.first?.hardwareOffload, true)
        // A NIC that claims hw-tc-offload but cannot do it joins the bridge.
        fake.devicesRefusingHardwareOffload = ["eth2"]
        t.add("eth2", .physical, master: "br0", hw: true)
        source.topology = t.topology
        let outcome = try reconciler.reconcile(intent: intent)
        XCTAssertTrue(outcome.fellBackToSoftware)
        XCTAssertEqual(outcome.plan.offload?.reason, "the kernel refused hardware offload on eth2: Operation not supported")
        XCTAssertEqual(outcome.hardwareRefusal?.devices, ["eth0", "eth1", "eth2"])
        let flowtable = try XCTUnwrap(fake.table(FlowctlNames.table)?.flowtables.first)
        XCTAssertFalse(flowtable.hardwareOffload, "one flowtable, one mode: software for every device")
        XCTAssertEqual(flowtable.devices, ["eth0", "eth1", "eth2"])
    }

    func testDryRunShowsTheFallbackAndSendsNothing() throws {
        let (fake, sent) = refusingKernel()
        let outcome = try Reconciler(topology: FakeTopologySource(hardwareHost().topology), backend: fake)
            .reconcile(intent: intent, dryRun: true)
        XCTAssertFalse(outcome.applied)
        XCTAssertTrue(outcome.fellBackToSoftware)
        XCTAssertEqual(outcome.plan.desired?.flowtable.hardwareOffload, false)
        XCTAssertEqual(outcome.plan.offload?.reason, "the kernel refused hardware offload on eth0, eth1: Operation not supported")
        XCTAssertEqual(sent(), 0, "checked, never applied")
        XCTAssertNil(try fake.table(FlowctlNames.table))
    }

    func testAFailingFallbackLeavesNothingBehind() throws {
        let (fake, _) = refusingKernel()
        var calls = 0
        // eth1 vanishes right after the hardware batch was refused.
        fake.beforeApply = { backend in
            calls += 1
            if calls == 2 { backend.existingDevices = ["eth0"] }
        }
        XCTAssertThrowsError(try Reconciler(topology: FakeTopologySource(hardwareHost().topology), backend: fake)
            .reconcile(intent: intent)) { error in
            guard case .unstable = error as? ReconcileError else { return XCTFail("\(error)") }
        }
        XCTAssertNil(try fake.table(FlowctlNames.table))
        XCTAssertTrue(fake.appliedBatches.isEmpty)
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
