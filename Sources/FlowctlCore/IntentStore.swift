import FoundationEssentials
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

    /// Largest state file read (a real one is a few hundred bytes).
    public static let maxFileBytes = 1 << 20

    /// The stored intent; an absent file is an empty intent. Anything else
    /// that is not a readable regular file (a dangling or looping symlink, a
    /// directory, a FIFO, a device) is an error naming what it is: taking it
    /// for "nothing enabled" would remove the fast path.
    public func load() throws(IntentStoreError) -> Intent {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT || errno == ENOTDIR && !directoryIsFile { return Intent() }
            throw .unreadable(path, reason: lastError())
        }
        // O_NONBLOCK: a FIFO must not block the open.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if info.st_mode & S_IFMT == S_IFLNK {
                switch code {
                case ENOENT: throw .unreadable(path, reason: "a symbolic link to nothing (\(linkTarget ?? "?"))")
                case ELOOP: throw .unreadable(path, reason: "a symbolic link loop")
                default: break
                }
            }
            throw .unreadable(path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        guard fstat(fd, &info) == 0 else { throw .unreadable(path, reason: lastError()) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw .unreadable(path, reason: "not a regular file (\(Self.fileType(info.st_mode)))")
        }
        guard info.st_size <= Self.maxFileBytes else {
            throw .unreadable(path, reason: "\(info.st_size) bytes; a state file is at most \(Self.maxFileBytes)")
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while data.count <= Self.maxFileBytes {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path, reason: lastError())
            }
            if count == 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        return try Self.decode(data, path: path)
    }

    /// The state directory is missing (a mistyped --state-dir, say).
    public var directoryExists: Bool {
        var info = stat()
        return stat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// ENOTDIR from lstat: some component of the directory is a file.
    private var directoryIsFile: Bool {
        var info = stat()
        return stat(directory, &info) == 0 && info.st_mode & S_IFMT != S_IFDIR
    }

    private var linkTarget: String? { try? FileManager.default.destinationOfSymbolicLink(atPath: path) }

    static func fileType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "mode \(String(mode, radix: 8))"
        }
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
        for name in intent.bridges.keys.sorted() {
            do { try intent.bridges[name]!.validate(bridge: name) } catch {
                throw .corrupt(path, reason: "bridge \(name.debugDescription): \(error)")
            }
        }
        return intent
    }

    /// A file system error in a line: the POSIX reason when there is one.
    static func reason(_ error: any Error) -> String {
        if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let cocoa = error as? CocoaError, let posix = cocoa.underlying as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(error)"
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? "" : " at \(path)"
        }
        switch error {
        case .dataCorrupted(let context):
            let underlying = context.underlyingError.map { "\($0)" }
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
        var info = stat()
        if stat(directory, &info) == 0 {
            if info.st_mode & S_IFMT != S_IFDIR { throw .unwritable(directory, reason: "not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
        } catch {
            throw .unwritable(directory, reason: Self.reason(error))
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
