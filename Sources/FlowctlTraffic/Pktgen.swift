import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Drives the kernel's packet generator (/proc/net/pktgen, per network
/// namespace) for rates beyond what a user-space sender reaches: UDP
/// frames of `frameSize` bytes to `destination` through `device`, over a
/// range of source ports, for `duration` seconds or `count` frames.
///
/// Two ways: `transmit` sends out of `device` (a guest's own NIC, the
/// frames then cross a veth into the host), `inject` hands each frame to
/// the stack as if `device` had received it (`xmit_mode netif_receive`):
/// at the host side of a guest's bridge port that is exactly what the
/// guest sending it looks like to the host, without the guest's cost.
public struct PktgenSender: Sendable {
    public enum Mode: String, Codable, Sendable {
        case transmit
        case inject
    }

    public var device: String
    public var mode: Mode = .transmit
    public var destination: String
    public var destinationMAC: String
    /// Source MAC of the frames (pktgen takes `device`'s otherwise; an
    /// injected frame should carry the guest's).
    public var sourceMAC: String?
    /// Source address of the frames (pktgen takes the device's otherwise,
    /// which a VLAN-tagged guest does not have on its base device).
    public var source: String?
    /// IPv4: the last of a range of source addresses from `source` (pktgen
    /// steps the address and the port with every frame).
    public var sourceLast: String?
    public var frameSize: Int
    public var sourcePorts: ClosedRange<Int>
    public var destinationPorts: ClosedRange<Int>
    public var duration: Double
    /// Stop after this many frames (the duration still bounds the run).
    public var count: Int?
    public var vlanID: UInt16?

    static let root = "/proc/net/pktgen"

    public init(device: String, destination: String, destinationMAC: String, frameSize: Int, flows: Int,
                duration: Double, vlanID: UInt16? = nil, destinationPort: UInt16 = 9000) {
        self.device = device
        self.destination = destination
        self.destinationMAC = destinationMAC
        self.frameSize = frameSize
        sourcePorts = 10000...(10000 + max(1, flows) - 1)
        destinationPorts = Int(destinationPort)...Int(destinationPort)
        self.duration = duration
        self.vlanID = vlanID
    }

    /// Distinct flows of one address pair: one per (source port, destination port) step.
    public var flows: Int { max(sourcePorts.count, destinationPorts.count) }

    public struct Result: Codable, Sendable, Hashable {
        public var packets: Int
        public var bytes: Int
        public var duration: Double
        public var packetsPerSecond: Double
        public var generator = "pktgen"
        public var mode: Mode
        /// Frames pktgen counted as errors. When injecting, a frame the
        /// flowtable forwarded (stolen from the stack) counts here too.
        public var errors: Int
        /// pktgen's own result line.
        public var pktgenResult: String
        public var flows: Int

        public init(packets: Int, bytes: Int, duration: Double, mode: Mode, errors: Int, pktgenResult: String,
                    flows: Int) {
            self.packets = packets
            self.bytes = bytes
            self.duration = duration
            packetsPerSecond = duration > 0 ? Double(packets) / duration : 0
            self.mode = mode
            self.errors = errors
            self.pktgenResult = pktgenResult
            self.flows = flows
        }
    }

    static func write(_ path: String, _ command: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw TrafficError(message: "\(path): cannot open (pktgen not loaded? CONFIG_NET_PKTGEN)")
        }
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: Data((command + "\n").utf8))
        } catch {
            throw TrafficError(message: "pktgen refused `\(command)` on \(path): \(error)")
        }
    }

    public static var isAvailable: Bool { FileManager.default.fileExists(atPath: root + "/pgctrl") }

    /// The device's configuration, in the order pktgen takes it.
    var commands: [String] {
        let v6 = destination.contains(":")
        var commands = [
            mode == .inject ? "xmit_mode netif_receive" : "xmit_mode start_xmit",
            "count \(count ?? 0)", "delay 0", "clone_skb 0", "burst 1",
            // pkt_size excludes the frame check sequence: a 64-byte frame is 60.
            "pkt_size \(max(v6 ? 62 : 42, frameSize - 4))",
            "dst_mac \(destinationMAC)",
            v6 ? "dst6 \(destination)" : "dst \(destination)",
            // pktgen wraps a port back to the minimum when it reaches the
            // maximum: the maximum is exclusive unless both are equal.
            "udp_dst_min \(destinationPorts.lowerBound)", "udp_dst_max \(Self.exclusiveMaximum(destinationPorts))",
            "udp_src_min \(sourcePorts.lowerBound)", "udp_src_max \(Self.exclusiveMaximum(sourcePorts))",
            // No pktgen flow slots: they would hold addresses per slot; every
            // frame steps the port (and the address range) instead.
            "flows 0",
        ]
        if let sourceMAC { commands.append("src_mac \(sourceMAC)") }
        if let vlanID { commands.append("vlan_id \(vlanID)") }
        if let source {
            commands += v6 ? ["src6 \(source)"] : ["src_min \(source)", "src_max \(sourceLast ?? source)"]
        }
        return commands
    }

    static func exclusiveMaximum(_ ports: ClosedRange<Int>) -> Int {
        ports.count == 1 ? ports.upperBound : ports.upperBound + 1
    }

    public func run() throws -> Result {
        guard Self.isAvailable else {
            throw TrafficError(message: "\(Self.root) does not exist: this kernel has no pktgen (modprobe pktgen, CONFIG_NET_PKTGEN)")
        }
        for port in [sourcePorts, destinationPorts] where port.lowerBound < 1 || Self.exclusiveMaximum(port) > 65535 {
            throw TrafficError(message: "UDP ports \(port) are outside 1-65535")
        }
        let thread = Self.root + "/kpktgend_0"
        try Self.write(thread, "rem_device_all")
        try Self.write(thread, "add_device \(device)")
        defer { try? Self.write(thread, "rem_device_all") }
        let dev = Self.root + "/" + device
        for command in commands { try Self.write(dev, command) }
        // pgctrl "start" blocks until stopped or the count is reached: a
        // thread stops it after `duration`.
        let started = ContinuousClock.now
        let done = DispatchSemaphore(value: 0)
        let stopper = Thread {
            if done.wait(timeout: .now() + duration) == .timedOut { try? Self.write(Self.root + "/pgctrl", "stop") }
        }
        stopper.start()
        try Self.write(Self.root + "/pgctrl", "start")
        done.signal()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let text = (try? String(contentsOfFile: dev, encoding: .utf8)) ?? ""
        let counters = Self.counters(text)
        return Result(packets: counters.sent, bytes: counters.sent * frameSize, duration: seconds, mode: mode,
                      errors: counters.errors,
                      pktgenResult: text.split(separator: "\n").first { $0.contains("Result:") }.map(String.init) ?? "",
                      flows: flows)
    }

    /// "Current:\n     pkts-sofar: 123456  errors: 7" from the device's file.
    static func counters(_ text: String) -> (sent: Int, errors: Int) {
        func number(after label: String) -> Int {
            guard let range = text.range(of: label) else { return 0 }
            return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        return (number(after: "pkts-sofar: "), number(after: "errors: "))
    }
}
