/// What the operator asked for: the enabled bridges and their options.
/// Stored in the state directory as JSON (see IntentStore).

public enum HWOffloadMode: String, Hashable, Sendable, Codable, CaseIterable {
    /// Hardware offload when every device in the flowtable supports hw-tc-offload.
    case auto
    /// Hardware offload required: planning fails when a device cannot do it.
    case on
    /// Software fast path only.
    case off
}

public struct BridgeIntent: Hashable, Sendable, Codable {
    /// Uplink devices named with `--uplink`; empty means "follow the default routes".
    public var uplinks: [String]
    public var hwOffload: HWOffloadMode

    public init(uplinks: [String] = [], hwOffload: HWOffloadMode = .auto) {
        self.uplinks = uplinks
        self.hwOffload = hwOffload
    }
}

public struct Intent: Hashable, Sendable, Codable {
    public static let currentVersion = 1

    public var version: Int
    /// Enabled bridges by name.
    public var bridges: [String: BridgeIntent]

    public init(bridges: [String: BridgeIntent] = [:]) {
        self.version = Intent.currentVersion
        self.bridges = bridges
    }

    public var isEmpty: Bool { bridges.isEmpty }
    public var bridgeNames: [String] { bridges.keys.sorted() }
}
