#if canImport(Glibc)
import Glibc
#endif

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
    /// Uplink devices named with `--uplink`; empty means "follow the routes".
    public var uplinks: [String]
    public var hwOffload: HWOffloadMode
    /// Names or patterns (`--exclude-uplink 'wg*'`) of devices the routes
    /// lead to that must not be uplinks (a device whose traffic must keep
    /// the slow path, say).
    public var excludedUplinks: [String]

    public init(uplinks: [String] = [], hwOffload: HWOffloadMode = .auto, excludedUplinks: [String] = []) {
        self.uplinks = uplinks
        self.hwOffload = hwOffload
        self.excludedUplinks = excludedUplinks
    }

    enum CodingKeys: String, CodingKey { case uplinks, hwOffload, excludedUplinks }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        uplinks = try container.decode([String].self, forKey: .uplinks)
        hwOffload = try container.decode(HWOffloadMode.self, forKey: .hwOffload)
        // Absent from state files written before it existed.
        excludedUplinks = try container.decodeIfPresent([String].self, forKey: .excludedUplinks) ?? []
    }

    /// Whether `device` is excluded from the uplinks.
    public func excludes(_ device: String) -> Bool {
        excludedUplinks.contains { $0 == device || (Intent.isPattern($0) && Intent.matches($0, device)) }
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

    /// This intent with `declared`'s bridges over it (the daemon's
    /// configuration file declares bridges beside the stored ones).
    public func merging(_ declared: Intent) -> Intent {
        var merged = self
        merged.bridges.merge(declared.bridges) { _, declared in declared }
        return merged
    }
    public var bridgeNames: [String] { bridges.keys.sorted() }

    /// A key with shell-style glob characters (`virbr*`, `br-?`, `cni[0-9]`)
    /// is a pattern: it enables every bridge whose name matches, now and
    /// later (libvirt, Docker, Kubernetes and Proxmox create bridges on the fly).
    public static func isPattern(_ key: String) -> Bool { key.contains { "*?[".contains($0) } }

    /// Whether `pattern` matches `name` (fnmatch(3), no flags).
    public static func matches(_ pattern: String, _ name: String) -> Bool { fnmatch(pattern, name, 0) == 0 }

    /// The key that enables `bridge`: its exact name, else the first
    /// pattern (in sorted order) that matches it; nil when none does.
    public func key(enabling bridge: String) -> String? {
        if bridges[bridge] != nil { return bridge }
        return bridgeNames.first { Self.isPattern($0) && Self.matches($0, bridge) }
    }
}

/// Why a bridge's intent cannot be taken. The CLI, the daemon's control
/// socket and the state file all check with `BridgeIntent.validate`, so
/// no way in accepts what another refuses.
public struct IntentValidationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension BridgeIntent {
    /// At most this many uplinks per bridge (a host has a handful; a list
    /// in the hundreds is a mistake, not a configuration).
    public static let maxUplinks = 64

    /// Checks `bridge` and these options: valid interface names, no uplink
    /// that is the bridge itself or named twice, not too many.
    public func validate(bridge: String) throws(IntentValidationError) {
        guard Planner.isValidInterfaceName(bridge) else {
            throw IntentValidationError("bridge \(bridge.debugDescription) is not a valid interface name (1 to 15 bytes, no '/', ':' or white space)")
        }
        for uplink in uplinks {
            guard Planner.isValidInterfaceName(uplink) else {
                throw IntentValidationError("uplink \(uplink.debugDescription) is not a valid interface name (1 to 15 bytes, no '/', ':' or white space)")
            }
            if uplink == bridge { throw IntentValidationError("uplink \(uplink) is the bridge itself") }
        }
        if Set(uplinks).count != uplinks.count {
            let twice = Dictionary(grouping: uplinks, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
            throw IntentValidationError("uplink \(twice.joined(separator: ", ")) named twice")
        }
        if uplinks.count > Self.maxUplinks {
            throw IntentValidationError("\(uplinks.count) uplinks; at most \(Self.maxUplinks) per bridge")
        }
        for excluded in excludedUplinks where !Planner.isValidInterfaceName(excluded) {
            throw IntentValidationError("excluded uplink \(excluded.debugDescription) is not a valid interface name or pattern")
        }
        if excludedUplinks.count > Self.maxUplinks {
            throw IntentValidationError("\(excludedUplinks.count) excluded uplinks; at most \(Self.maxUplinks) per bridge")
        }
    }
}
