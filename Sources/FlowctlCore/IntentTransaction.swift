/// Stores a new intent and brings the kernel to it, all or nothing: the new
/// intent is written to a temp file first (so a full disk fails before the
/// kernel is touched), the kernel gets one atomic batch, and only then is
/// the file renamed into place. If that rename fails, the kernel is brought
/// back to the old intent. Used by the one-shot commands and the daemon.
/// `hardwareRefusal`: what the kernel refused before (see Reconciler).
/// `declared`: bridges the daemon's configuration keeps enabled besides the
/// stored ones (planned with them, never stored). Returns the stored intent.
public enum IntentTransaction {
    public static func run(
        store: IntentStore, reconciler: Reconciler, required: Set<String> = [],
        hardwareRefusal: HardwareRefusal? = nil, declared: Intent = Intent(), _ edit: (inout Intent) throws -> Void
    ) throws -> (intent: Intent, outcome: ReconcileOutcome) {
        try store.withLock {
            let old = try store.load()
            var new = old
            try edit(&new)
            let pending = try store.prepare(new)
            let outcome: ReconcileOutcome
            do {
                outcome = try reconciler.reconcile(intent: new.merging(declared), required: required,
                                                   hardwareRefusal: hardwareRefusal)
            } catch {
                pending.abort()
                throw error
            }
            do {
                try pending.commit()
            } catch {
                _ = try? reconciler.reconcile(intent: old.merging(declared), hardwareRefusal: outcome.hardwareRefusal)
                throw error
            }
            return (new, outcome)
        }
    }
}

/// A topology source that answers with a value already known (the daemon's
/// view, kept current by events).
public struct FixedTopologySource: TopologySource {
    public var topology: Topology
    public init(_ topology: Topology) { self.topology = topology }
    public func snapshot() throws -> Topology { topology }
}

/// The daemon's view for one reconcile: its event-maintained topology at
/// first; asked again (the Reconciler's retry after the kernel refused a
/// device, ENOENT), it first drops the links that no longer exist under
/// their name and index on the host. A device deleted between the last
/// drained event and the batch then costs one more attempt within the
/// same pass, not a failed pass and a full resync; its RTM_DELLINK, when
/// it comes, finds nothing left to remove.
public final class PruningTopologyView: TopologySource, @unchecked Sendable {
    // @unchecked: used by one reconcile on the daemon's loop thread only.
    public private(set) var topology: Topology
    public private(set) var pruned: [String] = []
    private let indexOf: @Sendable (String) -> Int32?
    private var asked = 0

    public init(_ topology: Topology, indexOf: @escaping @Sendable (String) -> Int32?) {
        self.topology = topology
        self.indexOf = indexOf
    }

    public func snapshot() throws -> Topology {
        asked += 1
        if asked > 1 {
            for link in topology.links where indexOf(link.name) != link.index {
                topology.remove(index: link.index)
                pruned.append(link.name)
            }
        }
        return topology
    }
}
