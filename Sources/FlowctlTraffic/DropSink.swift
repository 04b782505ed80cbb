import FlowctlProcess
import Foundation

/// Counts and drops every UDP packet at one device's ingress (or, for a tap
/// whose reader is a VM, at the host side's egress): the receiver of a
/// forwarding-only measurement, which costs the host nothing beyond
/// the path being measured. An nftables netdev chain does both, so the
/// count is the kernel's own; other frames (ARP, neighbour discovery)
/// pass. Installed on init, removed when `run` returns.
public final class DropSink: Sendable {
    public enum Hook: String, Codable, Sendable {
        case ingress, egress
    }

    public struct Result: Codable, Sendable, Hashable {
        public var packets: Int
        public var bytes: Int
        public var device: String
        public var hook: Hook
        public var generator = "drop"

        public init(packets: Int, bytes: Int, device: String, hook: Hook) {
            self.packets = packets
            self.bytes = bytes
            self.device = device
            self.hook = hook
        }
    }

    public let device: String
    public let hook: Hook
    private let stopped = DispatchSemaphore(value: 0)
    static let table = "fb_sink"

    public init(device: String, hook: Hook) throws {
        self.device = device
        self.hook = hook
        _ = try? Subprocess.run(["nft", "delete", "table", "netdev", Self.table], standardError: .discard)
        try Self.nft(["-f", "-"], input: Self.ruleset(device: device, hook: hook))
    }

    /// The chain (a one-line table is not accepted by every nft version
    /// from standard input, so it is written out).
    static func ruleset(device: String, hook: Hook) -> String {
        """
        table netdev \(table) {
            chain sink {
                type filter hook \(hook.rawValue) device "\(device)" priority -500;
                meta l4proto udp counter drop
            }
        }

        """
    }

    @discardableResult
    static func nft(_ arguments: [String], input: String? = nil) throws -> String {
        let result = try Subprocess.run(["nft"] + arguments, input: input)
        guard result.succeeded else {
            throw TrafficError(message: "nft \(arguments.joined(separator: " ")): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdout
    }

    public func stop() { stopped.signal() }

    /// Waits until `stop` or `duration`, then reads the count and removes the chain.
    public func run(duration: Double) throws -> Result {
        _ = stopped.wait(timeout: .now() + duration)
        defer { _ = try? Self.nft(["delete", "table", "netdev", Self.table]) }
        let listing = try Self.nft(["-j", "list", "chain", "netdev", Self.table, "sink"])
        guard let counter = Self.counter(listing) else {
            throw TrafficError(message: "no counter in the sink chain's listing: \(listing.prefix(200))")
        }
        return Result(packets: counter.packets, bytes: counter.bytes, device: device, hook: hook)
    }

    /// The counter of `nft -j list chain` (libnftables' JSON schema).
    static func counter(_ json: String) -> (packets: Int, bytes: Int)? {
        struct Listing: Decodable {
            struct Item: Decodable { var rule: Rule? }
            struct Rule: Decodable { var expr: [Expression] }
            struct Expression: Decodable { var counter: Counter? }
            struct Counter: Decodable { var packets: Int; var bytes: Int }
            var nftables: [Item]
        }
        guard let listing = try? JSONDecoder().decode(Listing.self, from: Data(json.utf8)) else { return nil }
        return listing.nftables.lazy.compactMap(\.rule).flatMap(\.expr).compactMap(\.counter).first
            .map { ($0.packets, $0.bytes) }
    }
}
