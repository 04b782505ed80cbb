@testable import FlowctlDaemon
import FlowctlProcess
import Foundation
import Glibc
import Logging
import Synchronization
import XCTest

/// What the daemon tells systemd, and how its log lines reach the journal.
final class ServiceManagerTests: XCTestCase {
    func testNotifierReadsItsEnvironment() {
        let absent = SystemdNotifier(environment: [:])
        XCTAssertFalse(absent.isActive)
        XCTAssertNil(absent.watchdogInterval)
        XCTAssertNoThrow(try absent.notify(["READY=1"]), "without systemd every call is a no-op")

        let abstract = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify/42",
                                                     "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"], pid: 7)
        XCTAssertEqual(abstract.address, .abstract("/org/freedesktop/systemd1/notify/42"))
        XCTAssertEqual(abstract.watchdogInterval, .seconds(15), "pinged at half the timeout")
        let otherProcess = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/systemd/notify",
                                                         "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"], pid: 7)
        XCTAssertEqual(otherProcess.address, .path("/run/systemd/notify"))
        XCTAssertNil(otherProcess.watchdogInterval, "the watchdog is another process's")
    }

    func testNotifierSendsOneDatagram() throws {
        let name = "flowctl-notify-test-\(getpid())"
        let fd = try UnixSocketTestSupport.boundDatagram(abstract: name)
        defer { close(fd) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        try notifier.notify(["READY=1", "STATUS=1 bridge(s) enabled"])
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        XCTAssertEqual(String(decoding: buffer[0..<max(0, count)], as: UTF8.self), "READY=1\nSTATUS=1 bridge(s) enabled")
        // Nobody listening: an error the daemon can name, not a crash.
        XCTAssertThrowsError(try SystemdNotifier(environment: ["NOTIFY_SOCKET": "@\(name)-gone"]).notify(["READY=1"]))
    }

    func testJournalLinesCarryTheirPriority() {
        let lines = Locked<[String]>([])
        var logger = Logger(label: "flowctl") { label in
            JournalLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger.logLevel = .debug
        logger.warning("conntrack table is 85% full", metadata: ["count": "870"])
        logger.error("two\nlines")
        logger.debug("quiet")
        XCTAssertEqual(lines.withLock { $0 }, [
            "<4>flowctl: [FlowctlDaemonTests] conntrack table is 85% full count=870\n",
            "<3>flowctl: [FlowctlDaemonTests] two lines\n",
            "<7>flowctl: [FlowctlDaemonTests] quiet\n",
        ])
    }

    func testJournalIsRecognisedByStandardErrorsDeviceAndInode() {
        var status = stat()
        XCTAssertEqual(fstat(STDERR_FILENO, &status), 0)
        XCTAssertTrue(JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino)"]))
        XCTAssertFalse(JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino + 1)"]),
                       "stderr redirected elsewhere: not the journal")
        XCTAssertFalse(JournalLogHandler.standardErrorIsJournal(environment: [:]))
        XCTAssertFalse(JournalLogHandler.standardErrorIsJournal(environment: ["JOURNAL_STREAM": "garbage"]))
    }

    func testOnlyRestartOnlyKeysAreNamed() throws {
        let running = try DaemonConfiguration.parse("resync_interval = 300\n", path: "a.toml")
        let fresh = try DaemonConfiguration.parse("""
            resync_interval = 60
            log_level = "debug"
            control_socket = "/run/other.sock"
            [[bridge]]
            name = "virbr*"
            """, path: "a.toml")
        let (next, restartOnly) = running.reloading(fresh)
        XCTAssertEqual(restartOnly, ["control_socket", "log_level"])
        XCTAssertEqual(next.controlSocket, running.controlSocket, "a restart-only key keeps its running value")
        XCTAssertEqual(next.logLevel, running.logLevel)
        XCTAssertEqual(next.resyncInterval, 60, "a live key takes the new value")
        XCTAssertEqual(next.declaredIntent.bridgeNames, ["virbr*"])
    }
}

enum UnixSocketTestSupport {
    static func boundDatagram(abstract name: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = UnixSocketAddress.abstract(name).withSockaddr { bind(fd, $0, $1) }
        guard bound == 0 else {
            close(fd)
            throw KernelErrorForTests(code: errno)
        }
        return fd
    }
    struct KernelErrorForTests: Error { var code: Int32 }
}
