@testable import FlowctlCore
import XCTest

final class NftTextTests: XCTestCase {
    func ruleset() throws -> DesiredRuleset {
        var t = TopologyBuilder()
        t.add("up0", .veth)
        t.add("up0.20", .vlan, lower: "up0", vlan: 20)
        t.add("br0", .bridge)
        t.add("vnet1", .veth, master: "br0")
        t.add("br0.10", .vlan, lower: "br0", vlan: 10)
        t.defaultRoute(via: "up0.20")
        return try XCTUnwrap(try Planner().plan(intent: Intent(bridges: ["br0": BridgeIntent()]),
                                                topology: t.topology).desired)
    }

    func testWholeTable() throws {
        XCTAssertEqual(NftText.render(try ruleset()), """
            table inet flowctl {
            \tcomment "managed by flowctl; do not edit"

            \tset offload_ifaces {
            \t\ttype ifname
            \t\telements = { "br0", "br0.10" }
            \t}

            \tflowtable fastpath {
            \t\thook ingress priority 0
            \t\tdevices = { "up0", "vnet1" }
            \t\tcounter
            \t}

            \tchain forward {
            \t\ttype filter hook forward priority 2000000000; policy accept;
            \t\tiifname @offload_ifaces ct direction original meta l4proto tcp counter flow add @fastpath comment "flowctl/v2 iifname tcp"
            \t\tiifname @offload_ifaces ct direction original meta l4proto udp counter flow add @fastpath comment "flowctl/v2 iifname udp"
            \t\toifname @offload_ifaces ct direction original meta l4proto tcp counter flow add @fastpath comment "flowctl/v2 oifname tcp"
            \t\toifname @offload_ifaces ct direction original meta l4proto udp counter flow add @fastpath comment "flowctl/v2 oifname udp"
            \t}
            }

            """)
    }

    func testCommands() throws {
        let batch = NftBatch(table: FlowctlNames.table, changes: [
            .addTable(TableSpec(ref: FlowctlNames.table, comment: "c")),
            .addFlowtable(FlowtableSpec(name: "fastpath", devices: ["b", "a"], counter: true, hardwareOffload: true)),
            .addFlowtableDevices(flowtable: "fastpath", devices: ["vnet3"]),
            .deleteFlowtableDevices(flowtable: "fastpath", devices: ["vnet1"]),
            .addSetElements(set: "offload_ifaces", elements: ["br0.20"]),
            .deleteSetElements(set: "offload_ifaces", elements: ["br0.10"]),
            .deleteRule(chain: "forward", handle: 7),
            .deleteTable(FlowctlNames.table),
        ])
        XCTAssertEqual(NftText.commands(batch), [
            #"add table inet flowctl { comment "c"; }"#,
            #"add flowtable inet flowctl fastpath { hook ingress priority 0; devices = { "a", "b" }; counter; flags offload; }"#,
            #"add flowtable inet flowctl fastpath { hook ingress priority 0; devices = { "vnet3" }; }"#,
            #"delete flowtable inet flowctl fastpath { hook ingress priority 0; devices = { "vnet1" }; }"#,
            #"add element inet flowctl offload_ifaces { "br0.20" }"#,
            #"delete element inet flowctl offload_ifaces { "br0.10" }"#,
            "delete rule inet flowctl forward handle 7",
            "delete table inet flowctl",
        ])
    }

    func testQuotingEscapes() {
        XCTAssertEqual(NftText.quoted(#"a"b\c"#), #""a\"b\\c""#)
    }
}
