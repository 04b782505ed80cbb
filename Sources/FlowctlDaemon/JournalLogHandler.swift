import FlowctlProcess
import Foundation
import Glibc
import Logging

/// Log lines for systemd's journal. When stderr is the journal's stream
/// (JOURNAL_STREAM names stderr's device and inode, systemd.exec(5)), each
/// line starts with its syslog priority ("<4>" for a warning, sd-daemon(3)),
/// so `journalctl -p warning` finds the warnings; journald stamps the time,
/// so the line carries none. Anywhere else the daemon logs as before.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    public init(label: String, write: @escaping @Sendable (String) -> Void = JournalLogHandler.writeToStandardError) {
        self.label = label
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let own = event.metadata { all.merge(own) { _, new in new } }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        // One journal entry per line: a message with newlines stays one entry.
        let message = "\(event.message)".replacingOccurrences(of: "\n", with: " ")
        write("<\(Self.priority(event.level))>\(label): [\(event.source)] \(message)\(fields.isEmpty ? "" : " " + fields)\n")
    }

    /// syslog(3) priorities: LOG_DEBUG 7 ... LOG_CRIT 2.
    public static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: LOG_DEBUG
        case .info: LOG_INFO
        case .notice: LOG_NOTICE
        case .warning: LOG_WARNING
        case .error: LOG_ERR
        case .critical: LOG_CRIT
        }
    }

    /// Whether stderr is the journal stream JOURNAL_STREAM ("DEV:INODE") names.
    public static func standardErrorIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    private static let lock = Locked(())

    /// One write per line, serialized across threads.
    @Sendable public static func writeToStandardError(_ line: String) {
        lock.withLock { _ in _ = writeAll(STDERR_FILENO, Data(line.utf8)) }
    }
}
