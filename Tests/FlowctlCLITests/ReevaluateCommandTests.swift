import ArgumentParser
@testable import FlowctlCLI
import FlowctlCore
import FlowctlTesting
import XCTest

/// `flowctl reevaluate` one-shot against the fakes: the flowtable is
/// recreated with the same devices; bad names are one line and change nothing.
extension CommandLineTests {
    func testReevaluateRecreatesTheFlowtableAndSaysWhy() throws {
        XCTAssertEqual(flowctl(["enable", "br0"]), 0)
        let before = try XCTUnwrap(backend.table(FlowctlNames.table))
        stdout = ""
        XCTAssertEqual(flowctl(["reevaluate", "br0", "--port", "vnet0"]), 0, stderr)
        XCTAssertEqual(stdout, """
            7 offloaded flows re-evaluated (flowtable inet flowctl fastpath recreated): requested for br0, port vnet0
              flows still allowed are offloaded again on their next packet

            """)
        let after = try XCTUnwrap(backend.table(FlowctlNames.table))
        XCTAssertEqual(after.flowtables, before.flowtables)
        XCTAssertNotEqual(after.rules.map(\.handle), before.rules.map(\.handle), "rules recreated with the flowtable")
        stdout = ""
        XCTAssertEqual(flowctl(["reevaluate", "--json"]), 0, stderr)
        XCTAssertTrue(stdout.contains("\"causeKinds\" : [\n    \"requested\"\n  ]"), stdout)
    }

    func testReevaluateRefusesBadNamesAndChangesNothing() throws {
        XCTAssertEqual(flowctl(["reevaluate"]), 1)
        XCTAssertEqual(stderr, "flowctl: error: no bridge is enabled: no flow is offloaded by flowctl\n")
        XCTAssertEqual(flowctl(["enable", "br0"]), 0)
        let before = try backend.table(FlowctlNames.table)
        for (arguments, message) in [
            (["reevaluate", "nosuch0"], "no such device: nosuch0"),
            (["reevaluate", "vnet0"], "vnet0 is not a bridge (it is a tun device)"),
            (["reevaluate", "--port", "eth0"], "eth0 is not a port of an enabled bridge (enabled: br0)"),
        ] {
            stderr = ""
            XCTAssertEqual(flowctl(arguments), 1, arguments.joined(separator: " "))
            XCTAssertEqual(stderr, "flowctl: error: \(message)\n")
        }
        XCTAssertEqual(try backend.table(FlowctlNames.table), before, "a refused reevaluate changed the kernel")
        XCTAssertTrue(parse(["reevaluate", "a/b"])?.contains("is not a valid interface name") ?? false)
    }
}
