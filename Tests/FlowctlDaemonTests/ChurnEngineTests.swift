@testable import FlowctlDaemon
import FlowctlCore
import FlowctlTesting
import Foundation
import XCTest

/// Churn without full resyncs: routes are re-read alone, a device that
/// vanishes between the last event and the batch is handled in the same
/// pass, a deleted flowtable device is not deleted twice. The fake host
/// behaves like the lab kernel (FakeKernelAgreementTests).
extension SyncEngineTests {
    func kernelLike(_ backend: FakeRulesetBackend, _ source: FakeTopologySource) {
        backend.existingDevices = Set(source.topology.links.map(\.name))
    }

    func testDefaultRouteChangeReadsTheRoutesNotTheLinks() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        let eth1 = Link(index: 5, name: "eth1", kind: .physical)
        var host = source.topology
        host.upsert(eth1)
        host.routes = [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [5])]
        source.topology = host
        backend.deviceAdded("eth1")
        engine.receive([.link(eth1), .route(RouteChange(family: .ipv4, destination: "0.0.0.0", prefixLength: 0,
                                                        table: Route.mainTable, removed: false, isUnicast: true))])
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["eth1", "vnet0", "vnet1"])
        XCTAssertEqual(engine.statistics.resyncs, 1, "only the start read everything")
        XCTAssertEqual(engine.statistics.routeReads, 1)
        XCTAssertEqual(source.snapshots, 1)
        XCTAssertEqual(source.routeReads, 1)
    }

    /// IPv4 routes of a link that goes down are flushed without a
    /// notification (checked in the lab: Tests/lab/churn-e2e.sh).
    func testUplinkGoingDownReReadsTheRoutesItCarried() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        var host = source.topology
        var eth0 = host.link(named: "eth0")!
        eth0.isUp = false
        host.upsert(eth0)
        host.routes = []
        source.topology = host
        engine.receive([.link(eth0)])   // no route event
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["vnet0", "vnet1"])
        XCTAssertEqual(engine.statistics.routeReads, 1)
        XCTAssertEqual(engine.statistics.resyncs, 1)
    }

    func testPortGoneBeforeItsBatchIsHandledInTheSamePass() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        // Announced, then deleted before the batch: its RTM_DELLINK is not drained yet.
        engine.receive([.link(Link(index: 40, name: "vnet7", kind: .tun, masterIndex: 3))])
        engine.step()
        XCTAssertEqual(engine.statistics.errors, 0, engine.statistics.lastError ?? "")
        XCTAssertEqual(engine.statistics.resyncs, 1)
        XCTAssertEqual(engine.statistics.vanishedDevices, 1)
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
        XCTAssertFalse(engine.hasWork())
        // The late RTM_DELLINK finds nothing left to do.
        engine.receive([.linkRemoved(index: 40, name: "vnet7")])
        engine.step()
        XCTAssertEqual(engine.statistics.errors, 0)
    }

    func testDeletedFlowtableDeviceIsNotDeletedTwice() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        var host = source.topology
        host.remove(index: host.link(named: "vnet1")!.index)
        source.topology = host
        backend.deviceRemoved("vnet1")   // the kernel unhooks it
        engine.receive([.linkRemoved(index: 11, name: "vnet1")])
        engine.step()
        XCTAssertEqual(engine.statistics.errors, 0, engine.statistics.lastError ?? "")
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0"])
        XCTAssertEqual(engine.statistics.resyncs, 1)
    }
}
