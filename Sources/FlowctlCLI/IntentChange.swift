import FlowctlCore
import FlowctlDaemon

/// Stores a new intent and brings the kernel to it, all or nothing
/// (IntentTransaction), as the host's one writer.
func change(
    store: IntentStore, required: Set<String> = [], _ edit: (inout Intent) throws -> Void
) throws -> (intent: Intent, outcome: ReconcileOutcome) {
    try asHostWriter {
        try IntentTransaction.run(store: store, reconciler: Reconciler(edges: Runtime.makeEdges()),
                                  required: required, edit)
    }
}

/// What `enable --json` and `disable --json` print: what changed.
struct ChangeReport: Codable {
    var command: String
    /// The bridge or pattern, as given.
    var bridge: String
    var enabled: Bool
    /// Bridges a pattern matches now.
    var matched: [String]
    /// Nothing was sent: the kernel already matched (or the bridge was already so).
    var unchanged: Bool
    var throughDaemon: Bool
    var offload: String?
    /// The flowtable's devices that serve this bridge, with their reasons.
    var devices: [PlannedDevice]
    /// The nft commands of the batch sent, in order.
    var changes: [String]
    /// Enabled bridges and patterns after the change.
    var enabledBridges: [String]
    var warnings: [String]

    init(command: String, bridge: String, enabled: Bool, outcome: ReconcileOutcome, intent: Intent?, throughDaemon: Bool) {
        self.command = command
        self.bridge = bridge
        self.enabled = enabled
        matched = outcome.plan.bridges.filter { $0.name == bridge || $0.pattern == bridge }.map(\.name)
        unchanged = outcome.batch.isEmpty
        self.throughDaemon = throughDaemon
        offload = outcome.plan.offload.map { "\($0)" }
        devices = enabled ? Report.devices(of: outcome.plan, bridge: bridge) : []
        changes = NftText.commands(outcome.batch)
        enabledBridges = intent?.bridgeNames ?? []
        warnings = outcome.warnings
    }
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
