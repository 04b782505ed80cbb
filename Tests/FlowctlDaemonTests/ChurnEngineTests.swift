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

    /// A started engine on a kernel-like host, and a link eth1 (index 5)
    /// that exists on the host but carries no route yet; `routes` edits the host's routes.
    func engineWithNewLink(routes: (inout [Route]) -> Void = { _ in })
        throws -> (SyncEngine, FakeTopologySource, FakeRulesetBackend, Link)
    {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        let eth1 = Link(index: 5, name: "eth1", kind: .physical)
        var host = source.topology
        host.upsert(eth1)
        routes(&host.routes)
        source.topology = host
        backend.deviceAdded("eth1")
        return (engine, source, backend, eth1)
    }

    func testRouteNotificationsUpdateTheUplinksWithoutAnyDump() throws {
        let (engine, source, backend, eth1) = try engineWithNewLink()
        let route = Route(family: .ipv4, destination: "198.18.99.0/24", prefixLength: 24, outputIndices: [5])
        func change(removed: Bool) -> TopologyEvent {
            .route(RouteChange(family: .ipv4, destination: "198.18.99.0", prefixLength: 24, table: Route.mainTable,
                               removed: removed, isUnicast: true, route: route))
        }
        engine.receive([.link(eth1), change(removed: false)])
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "eth1", "vnet0", "vnet1"])
        engine.receive([change(removed: true)])
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1"])
        XCTAssertEqual(engine.statistics.resyncs, 1, "only the start read everything")
        XCTAssertEqual(engine.statistics.routeReads ?? 0, 0)
        XCTAssertEqual(source.snapshots, 1)
        XCTAssertEqual(source.routeReads, 0)
    }

    /// A notification the copy cannot settle (an IPv4 route appended beside
    /// one with the same key) reads the routes, not the links.
    func testUnsettledRouteNotificationReadsTheRoutesNotTheLinks() throws {
        let appended = Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [5])
        let (engine, source, backend, eth1) = try engineWithNewLink { $0.append(appended) }
        let existing = try XCTUnwrap(source.topology.routes.first { $0.isDefault })
        engine.receive([.link(eth1), .route(RouteChange(family: .ipv4, destination: "0.0.0.0", prefixLength: 0,
                                                        table: existing.table, removed: false, isUnicast: true,
                                                        route: appended, appends: true))])
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "eth1", "vnet0", "vnet1"])
        XCTAssertEqual(engine.statistics.resyncs, 1, "only the start read everything")
        XCTAssertEqual(engine.statistics.routeReads, 1)
        XCTAssertEqual(source.snapshots, 1)
        XCTAssertEqual(source.routeReads, 1)
    }

    /// The kernel deletes the routes through a deleted nexthop object
    /// without a route notification (checked in Tests/lab/reach-e2e.sh).
    func testDeletedNexthopObjectReadsTheRoutes() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        var host = source.topology
        host.routes.removeAll { $0.isDefault }
        source.topology = host
        engine.receive([.nexthopRemoved(id: 7)])
        engine.step()
        XCTAssertEqual(try flowtableDevices(backend), ["vnet0", "vnet1"])
        XCTAssertEqual(engine.statistics.routeReads, 1)
        XCTAssertEqual(engine.statistics.resyncs, 1)
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

/// Lost nftables notifications: the kernel cannot send the notification of
/// a flowtable with a few hundred devices (every listener gets ENOBUFS), so
/// the engine tells by the generation whether anything but its own commits
/// may have been missed.
extension SyncEngineTests {
    func testLostNotificationsOfOnlyOwnCommitsNeedNothingMore() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()   // generation 1 -> 2, ours
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: try backend.generation(), pid: 4242, tables: []))])
        var host = source.topology
        host.upsert(Link(index: 40, name: "vnet7", kind: .tun, masterIndex: 3))
        source.topology = host
        backend.deviceAdded("vnet7")
        engine.receive([.link(host.link(named: "vnet7")!)])
        engine.step()   // 2 -> 3, ours; its notification is lost:
        engine.receive([RulesetEvent.lost(reason: "ENOBUFS")])
        XCTAssertNil(engine.scheduler.due(), "only our own commit was lost: nothing to re-evaluate")
        engine.step()
        XCTAssertEqual(engine.statistics.resyncs, 1, "nftables losses need no dump of links and routes")
        XCTAssertEqual(try flowtableDevices(backend), ["eth0", "vnet0", "vnet1", "vnet7"])
    }

    func testLostNotificationsThatMayHideAForeignCommitAreReevaluated() throws {
        let (engine, source, backend) = try makeEngine()
        kernelLike(backend, source)
        engine.step()
        engine.receive([RulesetEvent.commit(RulesetCommit(generation: try backend.generation(), pid: 4242, tables: []))])
        // Another program commits; its notification is lost with ours.
        backend.install(KernelTable(ref: TableRef(family: .inet, name: "guard"), comment: nil))
        let start = ContinuousClock.now
        engine.receive([RulesetEvent.lost(reason: "ENOBUFS")], at: start)
        XCTAssertNotNil(engine.scheduler.due())
        engine.step(now: start + .milliseconds(25))
        XCTAssertEqual(engine.statistics.reevaluations, 1)
        XCTAssertEqual(engine.statistics.lastReevaluation?.causes, ["nftables notifications lost"])
        XCTAssertEqual(engine.statistics.resyncs, 1)
    }

    func testLostRtnetlinkEventsAreResyncedAndReevaluated() throws {
        let (engine, _, _) = try makeEngine()
        engine.step()
        let start = ContinuousClock.now
        engine.receive([TopologyEvent.lost(reason: "ENOBUFS")], at: start)
        engine.step(now: start)
        XCTAssertEqual(engine.statistics.resyncs, 2)
        engine.step(now: start + .milliseconds(25))
        XCTAssertEqual(engine.statistics.lastReevaluation?.causes, ["rtnetlink notifications lost"])
    }
}
