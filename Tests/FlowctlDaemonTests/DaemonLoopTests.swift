@testable import FlowctlDaemon
import FlowctlCore
import FlowctlTesting
import Foundation
import Logging
import XCTest

/// The event loop's control answers, without sockets.
final class DaemonLoopTests: XCTestCase {
    final class QuietEvents: TopologyEventSource, RulesetEventSource {
        var pollDescriptor: Int32 { -1 }
        func drain() throws -> [TopologyEvent] { [] }
        func drain() throws -> [RulesetEvent] { [] }
    }

    func makeLoop(declared: Intent = Intent()) throws -> DaemonLoop {
        let directory = NSTemporaryDirectory() + "flowctl-loop-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let store = IntentStore(directory: directory)
        try store.save(Intent(bridges: ["br0": BridgeIntent()]))
        let backend = FakeRulesetBackend()
        let topology = FakeTopologySource(Topology(links: [
            Link(index: 2, name: "eth0", kind: .physical), Link(index: 3, name: "br0", kind: .bridge),
            Link(index: 4, name: "vnet0", kind: .tun, masterIndex: 3),
            Link(index: 5, name: "virbr0", kind: .bridge), Link(index: 6, name: "vnet1", kind: .tun, masterIndex: 5),
        ], routes: [Route(family: .ipv4, destination: "0.0.0.0/0", prefixLength: 0, outputIndices: [2])]))
        let engine = try SyncEngine(topologySource: topology, backend: backend, store: store,
                                    logger: Logger(label: "test"), ownPID: 4242, declared: declared)
        engine.step()
        let events = QuietEvents()
        var configuration = DaemonConfiguration()
        configuration.stateDir = directory
        configuration.bridges = declared.bridges
        configuration.source = "/etc/flowctl/flowctl.toml"
        return DaemonLoop(engine: engine, topologyEvents: events, rulesetEvents: events, control: nil,
                          conntrack: FakeConntrack(ConntrackSummary(entries: 0, offloaded: 0, hardwareOffloaded: 0,
                                                                    count: 0, max: 100)),
                          backend: backend, configuration: configuration, logger: Logger(label: "test"))
    }

    func decode(_ data: Data) throws -> ControlResponse { try JSONDecoder().decode(ControlResponse.self, from: data) }

    /// A crowd shares one status answer, but a client from another network
    /// namespace is refused even right after one was made.
    func testSharedStatusAnswerIsForThisNamespaceOnly() throws {
        let loop = try makeLoop()
        var ours = ControlRequest(command: .status)
        ours.networkNamespace = loop.networkNamespace
        let first = loop.statusAnswer(ours)
        XCTAssertEqual(first, loop.statusAnswer(ours), "within 100 ms and no event between: the same bytes")
        XCTAssertTrue(try decode(first).ok)
        var theirs = ControlRequest(command: .status)
        theirs.networkNamespace = "net:[1]"
        let refused = try decode(loop.statusAnswer(theirs))
        XCTAssertFalse(refused.ok)
        XCTAssertEqual(refused.servesNetworkNamespace, loop.networkNamespace)
    }

    /// Bridges the configuration file declares are enabled beside the
    /// stored ones, never stored, and changed only in that file.
    func testDeclaredBridgesAreKeptAndNotChangedThroughTheSocket() throws {
        let loop = try makeLoop(declared: Intent(bridges: ["virbr*": BridgeIntent()]))
        let status = loop.handle(ControlRequest(command: .status))
        XCTAssertTrue(status.ok, status.error ?? "")
        XCTAssertEqual(status.intent?.bridgeNames, ["br0", "virbr*"])
        XCTAssertEqual(status.daemon?.declaredBridges, ["virbr*"])
        XCTAssertEqual(status.daemon?.configurationFile, "/etc/flowctl/flowctl.toml")
        XCTAssertEqual(Set(status.table?.flowtables.first?.devices ?? []), ["eth0", "vnet0", "vnet1"])
        for command in [ControlRequest.Command.enable, .disable] {
            let refused = loop.handle(ControlRequest(command: command, bridge: "virbr*"))
            XCTAssertFalse(refused.ok)
            XCTAssertEqual(refused.error, "\(command.rawValue): virbr* is declared in the daemon's configuration file /etc/flowctl/flowctl.toml; change it there and restart the daemon")
        }
        // Disabling a stored bridge leaves the declared one, and stores nothing of it.
        let disabled = loop.handle(ControlRequest(command: .disable, bridge: "br0"))
        XCTAssertTrue(disabled.ok, disabled.error ?? "")
        XCTAssertEqual(disabled.intent?.bridgeNames, ["virbr*"])
        XCTAssertEqual(try IntentStore(directory: loop.configuration.stateDir).load(), Intent())
        XCTAssertEqual(Set(loop.handle(ControlRequest(command: .status)).table?.flowtables.first?.devices ?? []), ["eth0", "vnet1"])
    }
}
