import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Drives the kernel's packet generator (/proc/net/pktgen, per network
/// namespace) for rates beyond what a user-space sender reaches: UDP
/// frames of `frameSize` bytes to `destination` through `device`, over
/// `flows` source ports, for `duration` seconds.
public struct PktgenSender: Sendable {
    public var device: String
    public var destination: String
    public var destinationMAC: String
    public var frameSize: Int
    public var flows: Int
    public var duration: Double
    public var vlanID: UInt16?
    public var destinationPort: UInt16
    /// Source address of the frames (pktgen takes the device's otherwise,
    /// which a VLAN-tagged guest does not have on its base device).
    public var source: String?

    static let root = "/proc/net/pktgen"

    public init(device: String, destination: String, destinationMAC: String, frameSize: Int, flows: Int,
                duration: Double, vlanID: UInt16? = nil, destinationPort: UInt16 = 9000) {
        self.device = device
        self.destination = destination
        self.destinationMAC = destinationMAC
        self.frameSize = frameSize
        self.flows = flows
        self.duration = duration
        self.vlanID = vlanID
        self.destinationPort = destinationPort
    }

    public struct Result: Codable, Sendable, Hashable {
        public var packets: Int
        public var bytes: Int
        public var duration: Double
        public var packetsPerSecond: Double
        public var generator = "pktgen"
        /// pktgen's own result line.
        public var pktgenResult: String
        /// Packets sent per flow are not known to pktgen: the flows share the count.
        public var flows: Int
    }

    static func write(_ path: String, _ command: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw TrafficError(message: "\(path): cannot open (pktgen not loaded? CONFIG_NET_PKTGEN)")
        }
        defer { try? handle.close() }
        do {
            // pktgen drops the last byte of every write (the newline echo sends).
            try handle.write(contentsOf: Data((command + "\n").utf8))
        } catch {
            throw TrafficError(message: "pktgen refused `\(command)` on \(path): \(error)")
        }
    }

    public static var isAvailable: Bool { FileManager.default.fileExists(atPath: root + "/pgctrl") }

    public func run() throws -> Result {
        guard Self.isAvailable else {
            throw TrafficError(message: "\(Self.root) does not exist: this kernel has no pktgen (modprobe pktgen, CONFIG_NET_PKTGEN)")
        }
        guard (1...4096).contains(flows) else { throw TrafficError(message: "flows must be 1 to 4096") }
        let thread = Self.root + "/kpktgend_0"
        try Self.write(thread, "rem_device_all")
        try Self.write(thread, "add_device \(device)")
        let dev = Self.root + "/" + device
        let v6 = destination.contains(":")
        var commands = [
            "count 0", "delay 0", "clone_skb 0", "burst 1",
            // pkt_size excludes the frame check sequence: a 64-byte frame is 60.
            "pkt_size \(max(v6 ? 62 : 42, frameSize - 4))",
            "dst_mac \(destinationMAC)",
            v6 ? "dst6 \(destination)" : "dst \(destination)",
            "udp_dst_min \(destinationPort)", "udp_dst_max \(destinationPort)",
            "udp_src_min 10000", "udp_src_max \(10000 + flows - 1)",
            "flows \(flows)", "flowlen 8",
        ]
        if let vlanID { commands.append("vlan_id \(vlanID)") }
        if let source {
            commands += v6 ? ["src6 \(source)"] : ["src_min \(source)", "src_max \(source)"]
        }
        for command in commands { try Self.write(dev, command) }
        // pgctrl "start" blocks until stopped: stop it from here after `duration`.
        let started = ContinuousClock.now
        let stopper = Thread {
            Thread.sleep(forTimeInterval: duration)
            try? Self.write(Self.root + "/pgctrl", "stop")
        }
        stopper.start()
        try Self.write(Self.root + "/pgctrl", "start")
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let text = (try? String(contentsOfFile: dev, encoding: .utf8)) ?? ""
        try? Self.write(thread, "rem_device_all")
        // "Current:\n     pkts-sofar: 123456  errors: 0"
        var sent = 0
        if let range = text.range(of: "pkts-sofar: ") {
            sent = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        let resultLine = text.split(separator: "\n").first { $0.contains("Result:") }.map(String.init) ?? ""
        return Result(packets: sent, bytes: sent * frameSize, duration: seconds,
                      packetsPerSecond: seconds > 0 ? Double(sent) / seconds : 0, pktgenResult: resultLine,
                      flows: flows)
    }
}
