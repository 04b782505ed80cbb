import FlowctlCore
import FlowctlProcess
import Foundation

/// Conntrack figures for the daemon's metrics and status answers, taken
/// on a thread of its own so that neither the event loop nor a client
/// ever waits for a dump. Counting offloaded flows means a ctnetlink dump
/// (filtered by the kernel to offloaded entries, but those can be a
/// million on a large hypervisor), so dumps are spaced by the interval
/// asked for or by `costFactor` times what the last one took, whichever
/// is longer: at most 1% of a CPU by default. The count and the limit
/// behind the 80% guard are two small /proc reads, fresh on every read.
final class ConntrackSampler: Sendable {
    struct Sample: Sendable {
        var summary: ConntrackSummary
        var at: ContinuousClock.Instant
        var cost: Duration
    }

    private struct State {
        var sample: Sample?
        var error: String?
        var stopping = false
        var started = false
        var stopped = false
        var interval: Duration
    }

    let source: any ConntrackSource
    let costFactor: Int64
    private let state: Locked<State>
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(_ source: any ConntrackSource, interval: Duration, costFactor: Int64 = 100) {
        self.source = source
        self.costFactor = costFactor
        state = Locked(State(interval: interval))
    }

    /// A new interval (SIGHUP); the next dump is rescheduled by it.
    func setInterval(_ interval: Duration) {
        state.withLock { $0.interval = interval }
        wake.signal()
    }

    /// When the dump after `sample` is due: `interval` after it, or
    /// `costFactor` times its cost, whichever is later.
    static func nextDump(after sample: Sample, interval: Duration, costFactor: Int64) -> ContinuousClock.Instant {
        sample.at + max(interval, sample.cost * costFactor)
    }

    /// Starts the sampling thread (once); the first dump begins at once.
    func start() {
        let first = state.withLock { state -> Bool in
            defer { state.started = true }
            return !state.started
        }
        guard first else { return }
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "flowctl-conntrack"
        thread.start()
    }

    /// Stops the thread and waits for it (a dump under way finishes first).
    func stop() {
        let running = state.withLock { state -> Bool in
            defer { state.stopping = true; state.stopped = true }
            return state.started && !state.stopped
        }
        guard running else { return }
        wake.signal()
        finished.wait()
    }

    private func run() {
        while !state.withLock({ $0.stopping }) {
            let started = ContinuousClock.now
            do {
                let summary = try source.summary()
                let sample = Sample(summary: summary, at: started, cost: .now - started)
                state.withLock {
                    $0.sample = sample
                    $0.error = nil
                }
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            // Sleep until the next dump is due (at least an interval after
            // this attempt, so failing dumps are paced too); a new interval
            // or stop wakes it early.
            while true {
                let (due, stopping) = state.withLock { state in
                    (max(started + state.interval,
                         state.sample.map { Self.nextDump(after: $0, interval: state.interval, costFactor: costFactor) }
                            ?? started),
                     state.stopping)
                }
                let wait = due - .now
                if stopping || wait <= .zero { break }
                _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: wait.nanoseconds)))
            }
        }
    }

    /// Offloaded flows as of the last dump (nil before it): what a
    /// re-evaluation reports without dumping on the event loop.
    var lastOffloadedFlows: Int? { state.withLock { $0.sample?.summary.offloaded } }

    /// The last dump's figures with a fresh count and limit (nil before the
    /// first dump ended), and the last dump's error; never waits.
    func latest() -> (summary: ConntrackSummary?, error: String?) {
        let (sample, error) = state.withLock { ($0.sample, $0.error) }
        guard var summary = sample?.summary else {
            return (nil, error ?? "the first conntrack sample is still being taken")
        }
        let (count, max) = source.capacity()
        summary.count = count ?? summary.count
        summary.max = max ?? summary.max
        if let count { summary.entries = count }
        return (summary, error)
    }
}
