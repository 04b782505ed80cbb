import Foundation

/// A value behind a lock, shared between threads: the project's one lock.
/// Built on a pthread mutex (NSLock) rather than Synchronization.Mutex,
/// whose lock the thread sanitizer cannot see: it would report every
/// guarded access as a race and hide the real ones.
/// @unchecked Sendable: every access to `value` holds `lock`.
public final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    public init(_ value: Value) { self.value = value }

    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
