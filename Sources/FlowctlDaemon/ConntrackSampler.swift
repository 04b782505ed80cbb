import FlowctlCore

/// Conntrack figures for the daemon's metrics and status answers at a
/// bounded cost. Counting offloaded entries means a ctnetlink dump that
/// copies every entry (a million on a large hypervisor: seconds of CPU), so
/// a dump's figures are reused until they are older than `costFactor` times
/// what the dump took (at most 1% of a CPU by default) or than the age the
/// caller allows, whichever is later. The count and the limit behind the
/// 80% guard cost two small reads and are always fresh.
/// Used on the daemon's loop thread only.
final class ConntrackSampler {
    let source: any ConntrackSource
    let costFactor: Int64
    private var last: (summary: ConntrackSummary, at: ContinuousClock.Instant, cost: Duration)?

    init(_ source: any ConntrackSource, costFactor: Int64 = 100) {
        self.source = source
        self.costFactor = costFactor
    }

    /// Fresh count and limit; entries and offloaded flows from a dump no
    /// older than `maxAge`, unless dumping that often would cost more than
    /// the budget.
    func summary(maxAge: Duration, now: ContinuousClock.Instant = .now) throws -> ConntrackSummary {
        if let last, now - last.at < max(maxAge, last.cost * costFactor) {
            var summary = last.summary
            (summary.count, summary.max) = source.capacity()
            return summary
        }
        let started = ContinuousClock.now
        let summary = try source.summary()
        last = (summary, now, ContinuousClock.now - started)
        return summary
    }

    /// How long the last dump took (nil before the first).
    var lastCost: Duration? { last?.cost }
}
