import FlowctlTesting
import Foundation
import XCTest

/// scripts/package: the .deb and tarball an operator installs on a host
/// without a Swift toolchain. Built once (a static release build and the
/// man pages) for all of these tests, under .build/package (scripts/package's default).
final class PackageEndToEndTests: XCTestCase {
    struct Built {
        var deb: String
        var tarball: String
        /// The .deb unpacked (dpkg-deb -x).
        var tree: String
    }

    nonisolated(unsafe) static var built: Result<Built, any Error>?

    static func package() throws -> Built {
        if let built { return try built.get() }
        let result = Result<Built, any Error> {
            let output = Lab.repoRoot.appendingPathComponent(".build/package/dist").path
            let run = try Subprocess.run([Lab.repoRoot.appendingPathComponent("scripts/package").path,
                                          "--output", output])
            guard run.succeeded else { throw PackageError("scripts/package failed:\n\(run)") }
            let paths = run.stdout.split(separator: "\n").map(String.init)
            guard paths.count == 2, paths[0].hasSuffix("_amd64.deb") || paths[0].hasSuffix(".deb"),
                  paths[1].hasSuffix(".tar.gz") else { throw PackageError("scripts/package printed: \(run.stdout)") }
            let tree = output + "/tree"
            try? FileManager.default.removeItem(atPath: tree)
            let unpacked = try Subprocess.run(["dpkg-deb", "-x", paths[0], tree])
            guard unpacked.succeeded else { throw PackageError("dpkg-deb -x: \(unpacked)") }
            return Built(deb: paths[0], tarball: paths[1], tree: tree)
        }
        built = result
        return try result.get()
    }

    struct PackageError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The folder holding the Swift toolchain (its usr/bin has swift).
    var toolchain: String {
        get throws {
            let which = try Subprocess.run(["sh", "-c", "readlink -f \"$(command -v swift)\""])
            var url = URL(fileURLWithPath: which.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            for _ in 0..<3 { url.deleteLastPathComponent() }   // .../usr/bin/swift -> ...
            guard which.succeeded, url.path != "/" else { throw PackageError("no swift toolchain found: \(which)") }
            return url.path
        }
    }

    func testDebHoldsWhatAHostNeedsAndDependsOnNoSwift() throws {
        let built = try Self.package()
        let depends = try Subprocess.run(["dpkg-deb", "-f", built.deb, "Depends"]).stdout
        for library in ["libnftnl11", "libnl-3-200", "libnl-route-3-200", "libmnl0"] {
            XCTAssertTrue(depends.contains(library), depends)
        }
        XCTAssertFalse(depends.lowercased().contains("swift"), depends)
        let contents = try Subprocess.run(["dpkg-deb", "-c", built.deb]).stdout
        for path in ["./usr/sbin/flowctl", "./lib/systemd/system/flowctl.service", "./etc/flowctl/flowctl.toml",
                     "./usr/share/man/man1/flowctl.1.gz", "./usr/share/man/man1/flowctl.enable.1.gz",
                     "./usr/share/bash-completion/completions/flowctl", "./usr/share/zsh/vendor-completions/_flowctl",
                     "./usr/share/fish/vendor_completions.d/flowctl.fish", "./usr/share/doc/flowctl/README.md"] {
            XCTAssertTrue(contents.contains(" \(path)\n"), "\(path) missing:\n\(contents)")
        }
        let conffiles = try Subprocess.run(["sh", "-c", "dpkg-deb --ctrl-tarfile \"$0\" | tar -xO ./conffiles", built.deb])
        XCTAssertEqual(conffiles.stdout, "/etc/flowctl/flowctl.toml\n")
        let unit = try String(contentsOfFile: built.tree + "/lib/systemd/system/flowctl.service", encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/sbin/flowctl daemon --config /etc/flowctl/flowctl.toml"), unit)
        let needed = try Subprocess.run(["objdump", "-p", built.tree + "/usr/sbin/flowctl"]).stdout
            .split(separator: "\n").filter { $0.contains("NEEDED") }
        XCTAssertFalse(needed.contains { $0.contains("swift") || $0.contains("Foundation") || $0.contains("dispatch") },
                       "\(needed)")
        let tarball = try Subprocess.run(["tar", "-tzf", built.tarball]).stdout
        XCTAssertTrue(tarball.contains("./usr/sbin/flowctl\n"), tarball)
    }

    /// The packaged binary runs with the toolchain's folder hidden (an
    /// empty tmpfs over it in a mount namespace of its own); the debug
    /// build, which links the toolchain's libraries, does not: the hiding works.
    func testPackagedBinaryRunsWithoutTheToolchain() throws {
        let built = try Self.package()
        let hidden = try toolchain
        func hiding(_ binary: String, _ arguments: String) throws -> ProcessResult {
            try Subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none \"$0\" && exec \"$1\" \(arguments)",
                                hidden, binary])
        }
        let version = try hiding(built.tree + "/usr/sbin/flowctl", "--version")
        XCTAssertEqual(version.status, 0, "\(version)")
        XCTAssertEqual(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       try Subprocess.run([Subprocess.product("flowctl"), "--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let doctor = try hiding(built.tree + "/usr/sbin/flowctl", "doctor --json")
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(doctor.stdout.utf8)), "\(doctor)")
        let debug = try hiding(Subprocess.product("flowctl"), "--version")
        XCTAssertNotEqual(debug.status, 0, "the toolchain was not hidden: the debug build ran\n\(debug)")
    }

    /// apt installs the .deb into a fresh Debian 12 root (debootstrap,
    /// from the mirror apt uses here), pulling its Depends; the binary runs
    /// there with nothing of Swift around.
    func testInstallsWithAptIntoAFreshDebian() throws {
        let built = try Self.package()
        let root = NSTemporaryDirectory() + "flowctl-debian-\(UUID().uuidString)"
        defer {
            _ = try? Subprocess.run(["umount", "-l", root + "/proc"])
            try? FileManager.default.removeItem(atPath: root)
        }
        let mirror = try Subprocess.run(["sh", "-c", "sed -n 's/^URIs: *//p; s/^deb \\([^ ]*\\) bookworm .*/\\1/p' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let bootstrap = try Subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root,
                                            mirror.isEmpty ? "http://deb.debian.org/debian" : mirror])
        XCTAssertTrue(bootstrap.succeeded, "debootstrap: \(bootstrap.stderr.suffix(2000))")
        guard bootstrap.succeeded else { return }
        try FileManager.default.copyItem(atPath: built.deb, toPath: root + "/tmp/flowctl.deb")
        let install = try Subprocess.run(["chroot", root, "sh", "-c",
                                          "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/flowctl.deb"])
        XCTAssertTrue(install.succeeded, "apt-get install in the fresh root: \(install)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/usr/bin/swift"))
        let version = try Subprocess.run(["chroot", root, "flowctl", "--version"])
        XCTAssertEqual(version.status, 0, "\(version)")
        _ = try Subprocess.run(["mount", "-t", "proc", "proc", root + "/proc"])
        let doctor = try Subprocess.run(["chroot", root, "flowctl", "doctor", "--json"])
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(doctor.stdout.utf8)), "\(doctor)")
        let status = try Subprocess.run(["chroot", root, "dpkg-query", "-W", "-f=${Status}", "flowctl"])
        XCTAssertEqual(status.stdout, "install ok installed")
    }

    /// The packaged binary in the lab kernel: enable, status, disable.
    func testPackagedBinaryEnablesAndDisablesInTheLab() throws {
        let built = try Self.package()
        let result = try Lab.run(["env", "FLOWCTL=\(built.tree)/usr/sbin/flowctl", "Tests/lab/package-e2e.sh"])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("PASS package-e2e"), "\(result)")
    }
}
