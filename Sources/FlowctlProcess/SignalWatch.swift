import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Delivers SIGINT and SIGTERM (or the signals given) to a handler on a
/// dispatch queue, never in signal context, where only async-signal-safe
/// calls may run: the signals are ignored and dispatch sources (signalfd-
/// like, through the dispatch manager) report them. `cancel` restores the
/// default dispositions.
public final class SignalWatch: @unchecked Sendable {
    // @unchecked Sendable: `sources` is written once in init and only read
    // (cancelled) afterwards; dispatch sources are thread-safe.
    private let sources: [any DispatchSourceSignal]
    private let signals: [Int32]

    public init(_ signals: [Int32] = [SIGINT, SIGTERM], handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    public func cancel() {
        for source in sources { source.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }
}
