import ArgumentParser
@testable import FlowctlCLI
import FlowctlCore
import FlowctlDaemon
import Foundation
import XCTest

/// Examples/kubernetes: the DaemonSet runs a command line flowctl accepts,
/// mounts exactly the paths the daemon uses (state, control socket,
/// configuration), asks for CAP_NET_ADMIN only, its ConfigMap is a valid
/// configuration, and the Containerfile installs the package scripts/package writes.
final class KubernetesExampleTests: XCTestCase {
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Examples/kubernetes").standardized

    func text(_ name: String) throws -> String {
        try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
    }

    /// The strings of a one-line YAML flow sequence (`key: ["a", "b"]`).
    func flowSequence(_ line: Substring) -> [String] {
        guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else { return [] }
        return line[line.index(after: open)..<close].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
    }

    func testDaemonSetCommandMountsAndCapabilities() throws {
        let manifest = try text("flowctl-daemonset.yaml")
        let lines = manifest.split(separator: "\n")
        let command = flowSequence(try XCTUnwrap(lines.first { $0.contains("command: [\"/usr/sbin/flowctl\", \"daemon\"") }))
        XCTAssertEqual(command.first, "/usr/sbin/flowctl")
        let parsed = try FlowctlCommand.parseAsRoot(Array(command.dropFirst()))
        let daemon = try XCTUnwrap(parsed as? DaemonCommand, "the DaemonSet's command is not `flowctl daemon`")
        // The manifest sets no --state-dir or --control-socket: the defaults are what it must mount.
        XCTAssertNil(daemon.stateDir)
        XCTAssertNil(daemon.controlSocket)
        var configuration = DaemonConfiguration()
        configuration.metricsAddress = try XCTUnwrap(daemon.metricsAddress)
        let config = try XCTUnwrap(command.firstIndex(of: "--config").map { command[$0 + 1] })

        let mounted = Set(lines.filter { $0.contains("mountPath:") }.map {
            String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        })
        let used: Set<String> = [
            configuration.stateDir,
            (configuration.controlSocket as NSString).deletingLastPathComponent,
            (config as NSString).deletingLastPathComponent,
        ]
        XCTAssertEqual(mounted, used, "mounted paths are not the ones the daemon uses")
        XCTAssertEqual(configuration.stateDir, IntentStore.defaultDirectory)
        XCTAssertEqual(configuration.controlSocket, ControlProtocol.defaultSocketPath)
        let hostPaths = Set(lines.indices.filter { lines[$0].contains(" path: /") && lines[$0 - 1].contains("hostPath:") }.map { lines[$0] }.map {
            String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
        })
        XCTAssertEqual(hostPaths, [configuration.stateDir, (configuration.controlSocket as NSString).deletingLastPathComponent],
                       "state and control socket come from the node")

        XCTAssertTrue(manifest.contains("hostNetwork: true"))
        XCTAssertEqual(flowSequence(try XCTUnwrap(lines.first { $0.contains("add: [") })), ["NET_ADMIN"])
        XCTAssertEqual(flowSequence(try XCTUnwrap(lines.first { $0.contains("drop: [") })), ["ALL"])
        XCTAssertFalse(manifest.contains("privileged: true"))
        let readiness = flowSequence(try XCTUnwrap(lines.first { $0.contains("command: [\"/usr/sbin/flowctl\", \"status\"") }))
        XCTAssertTrue(try FlowctlCommand.parseAsRoot(Array(readiness.dropFirst())) is StatusCommand)
        XCTAssertTrue(manifest.contains("containerPort: \(configuration.metricsAddress.split(separator: ":").last!)"))
    }

    func testConfigMapIsAValidConfiguration() throws {
        let manifest = try text("flowctl-daemonset.yaml")
        // The block under `flowctl.toml: |`, indented by four spaces.
        let lines = manifest.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try XCTUnwrap(lines.firstIndex { $0.contains("flowctl.toml: |") })
        let block = lines[(start + 1)...].prefix { $0.hasPrefix("    ") || $0.isEmpty }.map { $0.dropFirst(4) }
            .joined(separator: "\n")
        let configuration = try DaemonConfiguration.parse(block, path: "configmap")
        XCTAssertEqual(configuration.declaredIntent.bridgeNames, ["br-*", "cni0"])
    }

    func testContainerfileInstallsThePackage() throws {
        let file = try text("Containerfile")
        XCTAssertTrue(file.contains("COPY dist/flowctl_*_amd64.deb"), file)
        XCTAssertTrue(file.contains("apt-get install -y --no-install-recommends /tmp/flowctl_*_amd64.deb"), file)
        XCTAssertTrue(file.contains("ENTRYPOINT [\"/usr/sbin/flowctl\"]"), file)
        let package = try String(contentsOf: folder.appendingPathComponent("../../scripts/package").standardized, encoding: .utf8)
        XCTAssertTrue(package.contains("deb=$dist/flowctl_${version}_${arch}.deb"), "scripts/package names the .deb otherwise")
        XCTAssertTrue(package.contains("\"$root/usr/sbin/flowctl\""), "scripts/package installs the binary elsewhere")
    }
}
