/// Coalescing and rate limiting: causes that arrive within `coalesce` of
/// the first are handled together, and two re-evaluations are at least
/// `minInterval` apart, so a storm of commits costs a few re-evaluations
/// while a single change is handled within `coalesce`.
public struct ReevaluationScheduler: Sendable {
    public struct Settings: Hashable, Sendable, Codable {
        /// Re-evaluate on host changes by itself (`reevaluate` works either way).
        public var automatic: Bool
        public var coalesce: Duration
        public var minInterval: Duration

        public init(automatic: Bool = true, coalesce: Duration = .milliseconds(20),
                    minInterval: Duration = .milliseconds(250)) {
            self.automatic = automatic
            self.coalesce = coalesce
            self.minInterval = minInterval
        }
    }

    public var settings: Settings
    public private(set) var pending: [ReevaluationCause] = []
    public private(set) var firstPending: ContinuousClock.Instant?
    private var lastRun: ContinuousClock.Instant?

    public init(settings: Settings = Settings()) { self.settings = settings }

    public mutating func note(_ causes: [ReevaluationCause], at instant: ContinuousClock.Instant) {
        guard !causes.isEmpty else { return }
        if firstPending == nil { firstPending = instant }
        // Bounded: a storm keeps its first 64 distinct causes.
        for cause in causes where pending.count < 64 && !pending.contains(cause) { pending.append(cause) }
    }

    /// When the pending causes are due; nil when nothing is pending.
    public func due() -> ContinuousClock.Instant? {
        guard let firstPending else { return nil }
        let coalesced = firstPending + settings.coalesce
        guard let lastRun else { return coalesced }
        return max(coalesced, lastRun + settings.minInterval)
    }

    /// Whether the pending causes are due now (then `take` them and re-evaluate).
    public func ready(now: ContinuousClock.Instant) -> Bool {
        guard let due = due() else { return false }
        return now >= due
    }

    /// Forgets the pending causes: the flowtable was just created anew.
    public mutating func discardPending() {
        pending = []
        firstPending = nil
    }

    /// Takes the pending causes (they are being handled).
    public mutating func take(now: ContinuousClock.Instant) -> (causes: [ReevaluationCause], since: ContinuousClock.Instant)? {
        guard let firstPending else { return nil }
        defer {
            discardPending()
            lastRun = now
        }
        return (pending, firstPending)
    }
}
