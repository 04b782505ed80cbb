import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The operator's intent on disk: `<state-dir>/intent.json`, written
/// atomically (temp file, fsync, rename, fsync of the directory) and guarded
/// by an flock on `<state-dir>/lock` so two flowctl processes never
/// interleave a read-modify-write.
public struct IntentStore: Sendable {
    public static let defaultDirectory = "/var/lib/flowctl"
    public static let fileName = "intent.json"

    public let directory: String
    public var path: String { directory + "/" + Self.fileName }

    public init(directory: String) {
        self.directory = directory
    }

    /// The stored intent; an absent file is an empty intent.
    public func load() throws(IntentStoreError) -> Intent {
        guard let data = FileManager.default.contents(atPath: path) else {
            if access(path, F_OK) == 0 { throw .unreadable(path, reason: lastError()) }
            return Intent()
        }
        return try Self.decode(data, path: path)
    }

    static func decode(_ data: Data, path: String) throws(IntentStoreError) -> Intent {
        let intent: Intent
        do {
            intent = try JSONDecoder().decode(Intent.self, from: data)
        } catch let error as DecodingError {
            throw .corrupt(path, reason: Self.describe(error))
        } catch {
            throw .corrupt(path, reason: "\(error)")
        }
        guard intent.version == Intent.currentVersion else {
            throw .corrupt(path, reason: "version \(intent.version) is not supported (this flowctl reads version \(Intent.currentVersion))")
        }
        for name in intent.bridges.keys.sorted() where !Planner.isValidInterfaceName(name) {
            throw .corrupt(path, reason: "bridge name \(name.debugDescription) is not a valid interface name")
        }
        for (name, bridge) in intent.bridges {
            for uplink in bridge.uplinks where !Planner.isValidInterfaceName(uplink) {
                throw .corrupt(path, reason: "uplink \(uplink.debugDescription) of \(name) is not a valid interface name")
            }
        }
        return intent
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? "" : " at \(path)"
        }
        switch error {
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "not valid JSON\(at(context))" + (underlying.map { ": \($0)" } ?? "")
        case .keyNotFound(let key, let context):
            return "missing key \"\(key.stringValue)\"\(at(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(context.debugDescription)\(at(context))"
        @unknown default:
            return "\(error)"
        }
    }

    /// Runs `body` holding the store's exclusive lock (creating the directory).
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try ensureDirectory()
        let lockPath = directory + "/lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IntentStoreError.unwritable(lockPath, reason: lastError()) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw IntentStoreError.unwritable(lockPath, reason: lastError()) }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    func ensureDirectory() throws(IntentStoreError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            if !isDirectory.boolValue { throw .unwritable(directory, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        } catch {
            throw .unwritable(directory, reason: (error as NSError).localizedDescription)
        }
    }

    /// Writes `intent` to a temporary file next to the real one, durably, and
    /// returns the pending write: `commit()` renames it into place, `abort()`
    /// removes it. Lets a caller make sure the intent can be stored before
    /// it changes the kernel, and store it only once the kernel took it.
    public func prepare(_ intent: Intent) throws(IntentStoreError) -> PendingIntentWrite {
        try ensureDirectory()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(intent) + Data("\n".utf8) } catch {
            throw .unwritable(path, reason: "\(error)")
        }
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .unwritable(temporary, reason: lastError()) }
        var failure: String?
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = lastError()
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = lastError() }
        close(fd)
        if let failure {
            unlink(temporary)
            throw .unwritable(temporary, reason: failure)
        }
        return PendingIntentWrite(temporary: temporary, destination: path, directory: directory)
    }

    /// prepare + commit.
    public func save(_ intent: Intent) throws(IntentStoreError) {
        try prepare(intent).commit()
    }
}

public struct PendingIntentWrite: Sendable {
    let temporary: String
    let destination: String
    let directory: String

    public func commit() throws(IntentStoreError) {
        guard rename(temporary, destination) == 0 else {
            let reason = lastError()
            unlink(temporary)
            throw .unwritable(destination, reason: reason)
        }
        // Make the rename itself durable.
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    public func abort() {
        unlink(temporary)
    }
}

public enum IntentStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    case corrupt(String, reason: String)
    case unreadable(String, reason: String)
    case unwritable(String, reason: String)

    public var description: String {
        switch self {
        case .corrupt(let path, let reason):
            "state file \(path) is corrupt: \(reason) (fix or remove it; flowctl changed nothing)"
        case .unreadable(let path, let reason):
            "cannot read state file \(path): \(reason)"
        case .unwritable(let path, let reason):
            "cannot write \(path): \(reason)"
        }
    }
}

private func lastError() -> String {
    String(cString: strerror(errno))
}
