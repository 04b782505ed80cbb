import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Delivers SIGINT and SIGTERM (or the signals given) to a handler on a
/// dispatch queue, never in signal context. The signal handler is the
/// self-pipe trick: it only writes the signal's number to a pipe (write(2)
/// is async-signal-safe, errno is kept), and a dispatch read source on the
/// other end calls the handlers. Unlike ignoring the signal for a dispatch
/// signal source, a handler does not outlive exec: the children a bench or
/// a generator starts get the default dispositions, so they can still be
/// stopped. `cancel` restores the default disposition of the signals no
/// other watch wants.
public final class SignalWatch: Sendable {
    private let id: Int
    private let signals: [Int32]

    public init(_ signals: [Int32] = [SIGINT, SIGTERM], handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        id = SignalPipe.shared.add(signals: signals, handler: handler)
    }

    public func cancel() { SignalPipe.shared.remove(id) }
}

/// The process's one signal pipe and the watches reading it.
final class SignalPipe: Sendable {
    static let shared = SignalPipe()

    private struct Watch {
        var signals: [Int32]
        var handler: @Sendable (Int32) -> Void
    }

    private let readEnd: Int32
    private let watches = Locked<(next: Int, all: [Int: Watch])>((0, [:]))
    // nonisolated(unsafe): set in init and never touched again; held so
    // that the source lives as long as the process (dispatch sources are
    // thread-safe, their Swift type is not marked Sendable).
    nonisolated(unsafe) private let source: any DispatchSourceRead

    private init() {
        var ends: [Int32] = [-1, -1]
        precondition(pipe(&ends) == 0, "signal pipe: \(errno)")
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
        }
        readEnd = ends[0]
        signalPipeWriteEnd.store(ends[1], ordering: .sequentiallyConsistent)
        source = DispatchSource.makeReadSource(fileDescriptor: ends[0], queue: .global())
        source.setEventHandler { [self] in drain() }
        source.resume()
    }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            for byte in buffer[0..<count] {
                let number = Int32(byte)
                let handlers = watches.withLock { $0.all.values.filter { $0.signals.contains(number) }.map(\.handler) }
                for handler in handlers { handler(number) }
            }
        }
    }

    func add(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) -> Int {
        // Dispositions change under the lock, so a watch being added and
        // one being removed cannot undo each other.
        watches.withLock { state -> Int in
            state.next += 1
            state.all[state.next] = Watch(signals: signals, handler: handler)
            for number in signals { signal(number, signalPipeHandler) }
            return state.next
        }
    }

    func remove(_ id: Int) {
        watches.withLock { state in
            guard let watch = state.all.removeValue(forKey: id) else { return }
            let wanted = Set(state.all.values.flatMap(\.signals))
            for number in watch.signals where !wanted.contains(number) { signal(number, SIG_DFL) }
        }
    }
}

/// The pipe's write end, for the signal handler (an atomic load is
/// async-signal-safe; -1 until the pipe exists).
private let signalPipeWriteEnd = Atomic<Int32>(-1)

/// The signal handler: the signal's number into the pipe, errno kept.
private func signalPipeHandler(_ number: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(signalPipeWriteEnd.load(ordering: .relaxed), &byte, 1)
    errno = saved
}
