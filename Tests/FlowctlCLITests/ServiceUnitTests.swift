import ArgumentParser
@testable import FlowctlCLI
import FlowctlTesting
import Foundation
import XCTest

/// Examples/flowctl.service: a notify service with a watchdog and a reload
/// the daemon implements, a command line the CLI accepts, and hardened to
/// an exposure of at most 2.5 by systemd's own judge
/// (`systemd-analyze security --offline=true`; scripts/test installs systemd).
final class ServiceUnitTests: XCTestCase {
    let unit = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Examples/flowctl.service").standardized.path

    func settings() throws -> [String: [String]] {
        var values: [String: [String]] = [:]
        for line in try String(contentsOfFile: unit, encoding: .utf8).split(separator: "\n")
        where !line.hasPrefix("#") && line.contains("=") {
            let parts = line.split(separator: "=", maxSplits: 1)
            values[String(parts[0]), default: []].append(String(parts[1]))
        }
        return values
    }

    func testNotifyWatchdogAndReload() throws {
        let values = try settings()
        XCTAssertEqual(values["Type"], ["notify"])
        XCTAssertEqual(values["NotifyAccess"], ["main"])
        XCTAssertNotNil(values["WatchdogSec"])
        XCTAssertEqual(values["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        XCTAssertEqual(values["CapabilityBoundingSet"], ["CAP_NET_ADMIN"])
        let start = try XCTUnwrap(values["ExecStart"]?.first).split(separator: " ").map(String.init)
        XCTAssertEqual(start.first, "/usr/local/sbin/flowctl")
        XCTAssertTrue(try FlowctlCommand.parseAsRoot(Array(start.dropFirst())) is DaemonCommand,
                      "the unit's command line is one the CLI accepts")
    }

    func testExposureIsAtMostTwoAndAHalf() throws {
        // systemd-analyze wants the unit's file name; a copy keeps the repository untouched.
        let directory = NSTemporaryDirectory() + "flowctl-unit-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/flowctl.service"
        try FileManager.default.copyItem(atPath: unit, toPath: copy)
        let result = try Subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", copy])
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") },
                                 "systemd-analyze gave no verdict (is systemd installed? scripts/test installs it): \(result)")
        let level = try XCTUnwrap(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) },
                                  String(line))
        XCTAssertLessThanOrEqual(level, 2.5, String(line))
    }
}
