import FlowctlCore
import Foundation
import XCTest

final class IntentStoreTests: XCTestCase {
    var directory: String!

    override func setUp() {
        directory = NSTemporaryDirectory() + "flowctl-store-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testMissingFileIsEmptyIntent() throws {
        XCTAssertEqual(try IntentStore(directory: directory).load(), Intent())
    }

    func testRoundTrip() throws {
        let store = IntentStore(directory: directory)
        let intent = Intent(bridges: ["br0": BridgeIntent(uplinks: ["eth0"], hwOffload: .off), "br1": BridgeIntent()])
        try store.save(intent)
        XCTAssertEqual(try store.load(), intent)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp") }
        XCTAssertEqual(leftovers, [])
    }

    func testAbortedWriteLeavesOldIntent() throws {
        let store = IntentStore(directory: directory)
        let old = Intent(bridges: ["br0": BridgeIntent()])
        try store.save(old)
        let pending = try store.prepare(Intent(bridges: ["br9": BridgeIntent()]))
        pending.abort()
        XCTAssertEqual(try store.load(), old)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).sorted(), ["intent.json"])
    }

    func expectCorrupt(_ content: String, mentioning fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        let store = IntentStore(directory: directory)
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: store.path, contents: Data(content.utf8))
        XCTAssertThrowsError(try store.load(), file: file, line: line) { error in
            guard case .corrupt(let path, _) = error as? IntentStoreError else {
                return XCTFail("not a corrupt-file error: \(error)", file: file, line: line)
            }
            XCTAssertEqual(path, store.path, file: file, line: line)
            XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
            XCTAssertFalse("\(error)".contains("\n"), file: file, line: line)
        }
    }

    func testCorruptFilesAreNamedAndExplained() {
        expectCorrupt("{not json", mentioning: "not valid JSON")
        expectCorrupt(#"{"version": 1}"#, mentioning: #"missing key "bridges""#)
        expectCorrupt(#"{"version": 99, "bridges": {}}"#, mentioning: "version 99 is not supported")
        expectCorrupt(#"{"version": 1, "bridges": {"br0": {"uplinks": [], "hwOffload": "maybe"}}}"#,
                      mentioning: "bridges.br0.hwOffload")
        expectCorrupt(#"{"version": 1, "bridges": {"a/b": {"uplinks": [], "hwOffload": "auto"}}}"#,
                      mentioning: "not a valid interface name")
        expectCorrupt("", mentioning: "not valid JSON")
    }

    func testUnwritableDirectoryIsReported() throws {
        let file = directory + "-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data())
        defer { try? FileManager.default.removeItem(atPath: file) }
        XCTAssertThrowsError(try IntentStore(directory: file).save(Intent())) {
            XCTAssertTrue("\($0)".contains("not a directory"), "\($0)")
        }
    }

    func testLockIsExclusiveAcrossHolders() throws {
        // Two processes would block; within one, flock on two descriptors of the
        // same file also excludes, so a second LOCK_NB attempt must fail.
        let store = IntentStore(directory: directory)
        try store.withLock {
            let fd = open(directory + "/lock", O_RDWR)
            defer { close(fd) }
            XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), -1)
            XCTAssertEqual(errno, EWOULDBLOCK)
        }
        let fd = open(directory + "/lock", O_RDWR)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
    }

    /// What is not a readable regular file is an error naming what it is,
    /// never "nothing enabled" (that would remove the fast path).
    func testStateFilesThatAreNotRegularFilesAreNamed() throws {
        let store = IntentStore(directory: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func expectUnreadable(_ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try store.load(), file: file, line: line) { error in
                guard case .unreadable(let path, let reason) = error as? IntentStoreError else {
                    return XCTFail("not an unreadable-file error: \(error)", file: file, line: line)
                }
                XCTAssertEqual(path, store.path, file: file, line: line)
                XCTAssertTrue(reason.contains(fragment), reason, file: file, line: line)
            }
        }
        XCTAssertEqual(symlink(directory + "/nowhere", store.path), 0)
        expectUnreadable("a symbolic link to nothing")
        unlink(store.path)
        XCTAssertEqual(symlink(store.path, store.path), 0)
        expectUnreadable("a symbolic link loop")
        unlink(store.path)
        XCTAssertEqual(mkdir(store.path, 0o755), 0)
        expectUnreadable("not a regular file (a directory)")
        rmdir(store.path)
        XCTAssertEqual(mkfifo(store.path, 0o600), 0)
        expectUnreadable("not a regular file (a FIFO)")   // and the open does not block
        unlink(store.path)
        XCTAssertEqual(symlink("/dev/zero", store.path), 0)
        expectUnreadable("not a regular file (a character device)")
        unlink(store.path)
        // A symbolic link to a real state file is followed.
        let real = directory + "/real.json"
        try IntentStore(directory: directory).save(Intent(bridges: ["br0": BridgeIntent()]))
        XCTAssertEqual(rename(store.path, real), 0)
        XCTAssertEqual(symlink(real, store.path), 0)
        XCTAssertEqual(try store.load().bridgeNames, ["br0"])
    }

    func testMissingDirectoryIsEmptyIntentAndSaysSo() throws {
        let store = IntentStore(directory: directory + "/typo")
        XCTAssertEqual(try store.load(), Intent())
        XCTAssertFalse(store.directoryExists)
    }

    /// The same check for every way in: CLI, control socket, state file.
    func testBridgeIntentValidation() {
        func refusal(_ bridge: String, _ uplinks: [String]) -> String? {
            do { try BridgeIntent(uplinks: uplinks).validate(bridge: bridge); return nil } catch { return error.description }
        }
        XCTAssertNil(refusal("br0", ["eth0", "eth1"]))
        XCTAssertEqual(refusal("br0", ["br0"]), "uplink br0 is the bridge itself")
        XCTAssertEqual(refusal("br0", ["eth0", "eth0", "eth1"]), "uplink eth0 named twice")
        XCTAssertEqual(refusal("br0", (0..<300).map { "eth\($0)" }), "300 uplinks; at most 64 per bridge")
        XCTAssertTrue(refusal("a/b", [])?.contains("not a valid interface name") ?? false)
        XCTAssertTrue(refusal("br0", ["x y"])?.contains("uplink \"x y\" is not a valid interface name") ?? false)
        expectCorrupt(#"{"version": 1, "bridges": {"br0": {"uplinks": ["br0"], "hwOffload": "auto"}}}"#,
                      mentioning: "uplink br0 is the bridge itself")
    }
}
