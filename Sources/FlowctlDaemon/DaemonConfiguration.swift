import FlowctlCore
import Foundation
import TOMLKit

/// `flowctl daemon --config FILE` (TOML; see Examples/flowctl.toml). Every
/// key is optional; command-line options override the file.
public struct DaemonConfiguration: Decodable, Sendable, Hashable {
    public var stateDir: String = IntentStore.defaultDirectory
    public var controlSocket: String = ControlProtocol.defaultSocketPath
    /// Members of this group may use the control socket besides root.
    public var controlGroup: String?
    /// HOST:PORT for Prometheus metrics; empty disables them.
    public var metricsAddress: String = "127.0.0.1:9464"
    /// Full resync (dump both sides, diff) at least this often, in seconds.
    public var resyncInterval: Double = 300
    /// Conntrack sampling for metrics and the 80% warning, in seconds.
    public var conntrackInterval: Double = 10
    /// Remove flowctl's table when the daemon stops (default: leave the fast path in place).
    public var cleanupOnExit: Bool = false
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// Coherence: re-evaluate offloaded flows on host changes by itself.
    public var coherenceAutomatic: Bool = true
    /// Changes within this many milliseconds of the first are handled together.
    public var coherenceCoalesceMilliseconds: Double = 20
    /// At most one automatic re-evaluation per this many milliseconds.
    public var coherenceMinIntervalMilliseconds: Double = 250
    /// `[[bridge]]` tables: bridges (names or patterns) the daemon keeps
    /// enabled beside those `flowctl enable` stores; a fleet's configuration
    /// management declares them here. The CLI cannot enable or disable them.
    public var bridges: [String: BridgeIntent] = [:]
    /// The file it was read from (nil: defaults and options only).
    public var source: String?

    /// The declared bridges as an intent, merged over the stored one.
    public var declaredIntent: Intent { Intent(bridges: bridges) }

    public var coherence: ReevaluationScheduler.Settings {
        .init(automatic: coherenceAutomatic,
              coalesce: .nanoseconds(Int64(coherenceCoalesceMilliseconds * 1e6)),
              minInterval: .nanoseconds(Int64(coherenceMinIntervalMilliseconds * 1e6)))
    }

    enum CodingKeys: String, CodingKey {
        case stateDir = "state_dir"
        case controlSocket = "control_socket"
        case controlGroup = "control_group"
        case metricsAddress = "metrics_address"
        case resyncInterval = "resync_interval"
        case conntrackInterval = "conntrack_interval"
        case cleanupOnExit = "cleanup_on_exit"
        case logLevel = "log_level"
        case coherenceAutomatic = "coherence_automatic"
        case coherenceCoalesceMilliseconds = "coherence_coalesce_ms"
        case coherenceMinIntervalMilliseconds = "coherence_min_interval_ms"
        case bridges = "bridge"
    }

    /// One `[[bridge]]` table.
    struct DeclaredBridge: Decodable {
        var name: String
        var uplinks: [String]?
        var excludeUplinks: [String]?
        var hwOffload: HWOffloadMode?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, uplinks
            case excludeUplinks = "exclude_uplinks"
            case hwOffload = "hw_offload"
        }
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = DaemonConfiguration()
        stateDir = try c.decodeIfPresent(String.self, forKey: .stateDir) ?? defaults.stateDir
        controlSocket = try c.decodeIfPresent(String.self, forKey: .controlSocket) ?? defaults.controlSocket
        controlGroup = try c.decodeIfPresent(String.self, forKey: .controlGroup)
        metricsAddress = try c.decodeIfPresent(String.self, forKey: .metricsAddress) ?? defaults.metricsAddress
        resyncInterval = try Self.seconds(c, .resyncInterval) ?? defaults.resyncInterval
        conntrackInterval = try Self.seconds(c, .conntrackInterval) ?? defaults.conntrackInterval
        cleanupOnExit = try c.decodeIfPresent(Bool.self, forKey: .cleanupOnExit) ?? defaults.cleanupOnExit
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? defaults.logLevel
        coherenceAutomatic = try c.decodeIfPresent(Bool.self, forKey: .coherenceAutomatic) ?? defaults.coherenceAutomatic
        coherenceCoalesceMilliseconds = try Self.seconds(c, .coherenceCoalesceMilliseconds)
            ?? defaults.coherenceCoalesceMilliseconds
        coherenceMinIntervalMilliseconds = try Self.seconds(c, .coherenceMinIntervalMilliseconds)
            ?? defaults.coherenceMinIntervalMilliseconds
        for declared in try c.decodeIfPresent([DeclaredBridge].self, forKey: .bridges) ?? [] {
            let options = BridgeIntent(uplinks: declared.uplinks ?? [], hwOffload: declared.hwOffload ?? .auto,
                                       excludedUplinks: declared.excludeUplinks ?? [])
            do { try options.validate(bridge: declared.name) } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.bridges], debugDescription: "\(error)"))
            }
            guard bridges.updateValue(options, forKey: declared.name) == nil else {
                throw DecodingError.dataCorrupted(.init(codingPath: [CodingKeys.bridges],
                                                        debugDescription: "\(declared.name) is declared twice"))
            }
        }
    }


    /// `fresh` as a running daemon takes it on SIGHUP: every key from
    /// `fresh`, except those only a restart applies (the sockets, the state
    /// directory, the log level, cleanup on exit), which keep their running
    /// values and are named as in the file.
    public func reloading(_ fresh: DaemonConfiguration) -> (configuration: DaemonConfiguration, restartOnly: [String]) {
        var next = fresh
        var restartOnly: [String] = []
        func keep<Value: Equatable>(_ key: WritableKeyPath<DaemonConfiguration, Value>, _ name: CodingKeys) {
            guard next[keyPath: key] != self[keyPath: key] else { return }
            restartOnly.append(name.rawValue)
            next[keyPath: key] = self[keyPath: key]
        }
        keep(\.stateDir, .stateDir)
        keep(\.controlSocket, .controlSocket)
        keep(\.controlGroup, .controlGroup)
        keep(\.metricsAddress, .metricsAddress)
        keep(\.logLevel, .logLevel)
        keep(\.cleanupOnExit, .cleanupOnExit)
        return (next, restartOnly)
    }

    /// TOML keeps integers and floats apart; both are fine for seconds and milliseconds.
    static func seconds(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Double? {
        guard c.contains(key) else { return nil }
        if let integer = try? c.decode(Int.self, forKey: key) { return Double(integer) }
        return try c.decode(Double.self, forKey: key)
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case syntax(path: String, line: Int, column: Int, message: String)
        case invalid(path: String, message: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): "\(path): cannot read: \(reason)"
            case .syntax(let path, let line, let column, let message): "\(path):\(line):\(column): \(message)"
            case .invalid(let path, let message): "\(path): \(message)"
            }
        }
    }

    /// What each key holds: TOML types, and the words for an error.
    struct Expected: Sendable {
        /// TOMLType raw values.
        var types: Set<String>
        var what: String
        init(_ types: [TOMLType], _ what: String) {
            self.types = Set(types.map(\.rawValue))
            self.what = what
        }
    }
    static let string = Expected([.string], "a string")
    static let number = Expected([.int, .double], "a number")
    static let boolean = Expected([.bool], "true or false")
    static let names = Expected([.array], "a list of device names")
    static let keyTypes: [String: Expected] = [
        "state_dir": string, "control_socket": string, "control_group": string, "metrics_address": string,
        "log_level": string, "resync_interval": number, "conntrack_interval": number,
        "coherence_coalesce_ms": number, "coherence_min_interval_ms": number, "cleanup_on_exit": boolean,
        "coherence_automatic": boolean, "bridge": Expected([.array], "[[bridge]] tables"),
    ]
    static let bridgeKeyTypes: [String: Expected] = [
        "name": string, "uplinks": names, "exclude_uplinks": names, "hw_offload": Expected([.string], "auto, on or off"),
    ]
    static var knownKeys: Set<String> { Set(keyTypes.keys) }
    static var knownBridgeKeys: Set<String> { Set(bridgeKeyTypes.keys) }

    /// Unknown keys and values of the wrong type, named before decoding
    /// (the decoder would call a string where a boolean belongs "missing").
    static func check(_ table: TOMLTable, _ types: [String: Expected], at place: String, path: String) throws {
        if let unknown = table.keys.sorted().first(where: { types[$0] == nil }) {
            throw LoadError.invalid(path: path, message: "\(place)unknown key \"\(unknown)\" (known: \(types.keys.sorted().joined(separator: ", ")))")
        }
        for key in table.keys.sorted() {
            guard let expected = types[key], let value = table[key] else { continue }
            let wrongElement = expected.what == names.what
                && (value.array?.contains { $0.type != .string } ?? false)
            if !expected.types.contains(value.type.rawValue) || wrongElement {
                throw LoadError.invalid(path: path, message: "\(place)\(key): wrong type (\(value.type)), expected \(expected.what)")
            }
        }
    }

    public static func load(path: String) throws -> DaemonConfiguration {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw LoadError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        var configuration = try parse(text, path: path)
        configuration.source = path
        return configuration
    }

    public static func parse(_ text: String, path: String) throws -> DaemonConfiguration {
        let table: TOMLTable
        if let problem = TOMLText.check(text) {
            throw LoadError.syntax(path: path, line: problem.line, column: problem.column, message: problem.message)
        }
        do { table = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw LoadError.syntax(path: path, line: error.source.begin.line, column: error.source.begin.column,
                                   message: error.description)
        }
        try check(table, keyTypes, at: "", path: path)
        for (number, entry) in (table["bridge"]?.array.map(Array.init) ?? []).enumerated() {
            guard let bridge = entry.table else {
                throw LoadError.invalid(path: path, message: "bridge \(number + 1): wrong type (\(entry.type)), expected a table")
            }
            try check(bridge, bridgeKeyTypes, at: "bridge \(number + 1): ", path: path)
        }
        let configuration: DaemonConfiguration
        do { configuration = try TOMLDecoder().decode(DaemonConfiguration.self, from: table) } catch {
            throw LoadError.invalid(path: path, message: describe(error))
        }
        if configuration.resyncInterval <= 0 || configuration.conntrackInterval <= 0 {
            throw LoadError.invalid(path: path, message: "resync_interval and conntrack_interval must be positive seconds")
        }
        if configuration.coherenceCoalesceMilliseconds < 0 || configuration.coherenceMinIntervalMilliseconds < 0
            || configuration.coherenceCoalesceMilliseconds > 10_000 || configuration.coherenceMinIntervalMilliseconds > 60_000
        {
            throw LoadError.invalid(path: path, message: "coherence_coalesce_ms must be 0 to 10000 and coherence_min_interval_ms 0 to 60000 milliseconds")
        }
        return configuration
    }

    static func describe(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        switch decoding {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): expected \(type)"
        case .keyNotFound(let key, _):
            return "missing key \(key.stringValue)"
        case .dataCorrupted(let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
