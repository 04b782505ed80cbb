@testable import FlowctlDaemon
import FlowctlCore
import FlowctlTesting
import Logging
import XCTest

/// The engine's coherence: foreign commits and port changes lead to one
/// coalesced re-evaluation (the flowtable recreated), own commits do not.
extension SyncEngineTests {
    func testForeignCommitIsReevaluatedOnceAfterTheWindow() throws {
        let (engine, _, backend) = try makeEngine()
        engine.step()
        let start = ContinuousClock.now
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 9, pid: 4242, tables: []))], at: start)
        XCTAssertNil(engine.scheduler.due(), "own commits are not re-evaluated")
        for generation in UInt32(10)...12 {
            engine.receive([RulesetEvent.commit(RulesetCommit(generation: generation, pid: 777,
                                                              tables: [TableRef(family: .bridge, name: "guard")]))],
                           at: start)
        }
        engine.step(now: start)
        XCTAssertEqual(engine.statistics.reevaluations, 0, "not before the coalescing window")
        let before = try backend.table(FlowctlNames.table)
        engine.step(now: start + .milliseconds(25))
        XCTAssertEqual(engine.statistics.reevaluations, 1)
        let record = try XCTUnwrap(engine.statistics.lastReevaluation)
        XCTAssertEqual(record.causeKinds, ["nftables"])
        XCTAssertEqual(record.causes, ["nftables commit by pid 777 (bridge guard)"])
        XCTAssertEqual(try backend.table(FlowctlNames.table)?.flowtables, before?.flowtables,
                       "the flowtable is back with the same devices")
        XCTAssertNotEqual(try backend.table(FlowctlNames.table)?.rules.map(\.handle), before?.rules.map(\.handle),
                          "rules were recreated with the flowtable")
        XCTAssertNil(engine.scheduler.due())
    }

    func testARepairThatRecreatesTheFlowtableNeedsNoReevaluation() throws {
        let (engine, _, backend) = try makeEngine()
        engine.step()
        backend.removeTable(FlowctlNames.table)  // `nft delete table inet flowctl`
        let start = ContinuousClock.now
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 10, pid: 777, tables: [FlowctlNames.table]))],
                       at: start)
        XCTAssertNotNil(engine.scheduler.due())
        engine.step(now: start)
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"], "repaired")
        XCTAssertNil(engine.scheduler.due(), "the repair created the flowtable: nothing left to re-evaluate")
        engine.step(now: start + .milliseconds(30))
        XCTAssertEqual(engine.statistics.reevaluations, 0)
    }

    func testADueReevaluationWaitsForAFailingReconcileWithoutSpinning() throws {
        let (engine, source, backend) = try makeEngine()
        engine.step()
        let start = ContinuousClock.now
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 10, pid: 777, tables: []))], at: start)
        // A new port the kernel refuses (ENOENT): the reconcile fails and backs off.
        backend.existingDevices = ["eth0", "vnet0", "vnet1"]
        source.topology = topology(ports: 3)
        engine.receive([TopologyEvent.link(source.topology.link(named: "vnet2")!)], at: start)
        engine.step(now: start + .milliseconds(25))
        XCTAssertEqual(engine.statistics.errors, 1)
        XCTAssertEqual(engine.statistics.reevaluations, 0)
        // The backoff counts from the pass (`now` of the step), not from the wall clock.
        let later = start + .milliseconds(25)
        XCTAssertFalse(engine.hasWork(now: later), "nothing to do until the retry is due")
        XCTAssertGreaterThan(try XCTUnwrap(engine.sleepBudget(now: later)), .zero, "the loop sleeps until the retry")
    }

    func testAutomaticReevaluationCanBeTurnedOff() throws {
        let store = IntentStore(directory: directory)
        try store.save(Intent(bridges: ["br0": BridgeIntent()]))
        let engine = try SyncEngine(topologySource: FakeTopologySource(topology(ports: 2)), backend: FakeRulesetBackend(),
                                    store: store, logger: Logger(label: "test"), ownPID: 4242,
                                    coherence: .init(automatic: false))
        engine.step()
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: 10, pid: 777, tables: []))])
        XCTAssertNil(engine.scheduler.due())
        let record = try engine.reevaluateNow(bridges: ["br0"], ports: ["vnet0"])
        XCTAssertEqual(record.causes, ["requested for br0, port vnet0"])
        XCTAssertThrowsError(try engine.reevaluateNow(bridges: ["nosuch0"], ports: [])) {
            XCTAssertEqual("\($0)", "no such device: nosuch0")
        }
    }

    func testPortVLANChangeIsReevaluated() throws {
        let (engine, _, _) = try makeEngine()
        engine.step()
        let info = { (vid: UInt16) in BridgePortInfo(vlans: BridgeVLANs(vids: [vid], pvid: vid, untagged: [vid]), state: 3) }
        let start = ContinuousClock.now
        engine.receive([TopologyEvent.bridgePort(index: 10, info(10))], at: start)
        engine.step(now: start + .milliseconds(25))
        engine.receive([TopologyEvent.bridgePort(index: 10, info(11))], at: start + .milliseconds(300))
        engine.step(now: start + .milliseconds(600))
        XCTAssertEqual(engine.statistics.lastReevaluation?.causes,
                       ["vnet0 (port of br0): VLAN 10 pvid untagged -> VLAN 11 pvid untagged"])
    }
}
