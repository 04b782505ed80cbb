import FlowctlCore
import FlowctlDaemon

/// Stores a new intent and brings the kernel to it, all or nothing: the new
/// intent is written to a temp file first (so a full disk fails before the
/// kernel is touched), the kernel gets one atomic batch, and only then is
/// the file renamed into place. If that rename fails, the kernel is brought
/// back to the old intent.
func change(
    store: IntentStore, required: Set<String> = [], _ edit: (inout Intent) throws -> Void
) throws -> (intent: Intent, outcome: ReconcileOutcome) {
    try asHostWriter { try store.withLock {
        let old = try store.load()
        var new = old
        try edit(&new)
        let reconciler = Reconciler(edges: Runtime.makeEdges())
        let pending = try store.prepare(new)
        let outcome: ReconcileOutcome
        do {
            outcome = try reconciler.reconcile(intent: new, required: required)
        } catch {
            pending.abort()
            throw error
        }
        do {
            try pending.commit()
        } catch {
            _ = try? reconciler.reconcile(intent: old)
            throw error
        }
        return (new, outcome)
    } }
}

/// Runs a one-shot change of the kernel holding the host writer lock, so
/// no daemon and no other command writes flowctl's table meanwhile (a
/// daemon that is running answers the command instead: StateOptions.daemon).
/// Tests with fake edges (Runtime.useDaemon off) touch no host and take no lock.
func asHostWriter<T>(_ body: () throws -> T) throws -> T {
    guard Runtime.useDaemon else { return try body() }
    let lock = try HostWriterLock.acquire()
    return try withExtendedLifetime(lock) { try body() }
}

extension Reconciler {
    init(edges: Edges) {
        self.init(topology: edges.topology, backend: edges.backend)
    }
}
