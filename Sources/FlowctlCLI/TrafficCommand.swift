import ArgumentParser
import FlowctlLinux
import FlowctlTraffic
import FlowctlProcess
import Foundation

/// The built-in generators, each run as its own process inside a network
/// namespace by `flowctl bench` (`ip netns exec NS flowctl traffic ...`).
/// Each prints one JSON line with its result on stdout.
struct TrafficCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic",
        abstract: "Built-in traffic generators and sinks (used by `flowctl bench`).",
        subcommands: [UDPSendCommand.self, UDPSinkCommand.self, PktgenCommand.self, DropSinkCommand.self, ConntrackCountCommand.self, TCPSinkCommand.self,
                      TCPSendCommand.self, CRRServerCommand.self, CRRClientCommand.self, RRServerCommand.self,
                      RRClientCommand.self, TapRelayCommand.self])
}

func printLine<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}

struct UDPSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp-send", abstract: "Send UDP datagrams (sendmmsg batches) over several flows.")

    @Option(help: ArgumentHelp("Destination ADDRESS:PORT ([v6]:port for IPv6).", valueName: "addr:port"))
    var to: String
    @Option(help: "UDP payload bytes (18 makes 64-byte frames over IPv4, 10 over IPv6).")
    var size = 18
    @Option(help: "Flows: sockets with distinct source ports.")
    var flows = 1
    @Option(help: "Seconds to send.")
    var duration = 3.0
    @Option(help: "Stop after this many packets.")
    var count: Int?
    @Option(help: "Packets per second (default: as fast as possible).")
    var rate: Double?
    @Option(help: "Datagrams per sendmmsg call.")
    var batch = 64

    func validate() throws {
        guard Endpoint(to) != nil else { throw ValidationError("--to \(to) is not ADDRESS:PORT") }
        guard (1...1024).contains(batch) else { throw ValidationError("--batch must be 1 to 1024") }
    }

    func run() throws {
        try guarded {
            let sender = UDPSender(target: Endpoint(to)!, size: size, flows: flows, duration: duration, count: count,
                                   rate: rate, batch: batch)
            try printLine(try sender.run())
        }
    }
}

/// SIGINT and SIGTERM run `stop` on a dispatch queue, not in signal
/// context, for the process's life (the signal pipe keeps the handler
/// until a watch is cancelled).
func stopOnTerminationSignals(_ stop: @escaping @Sendable () -> Void) {
    _ = SignalWatch { _ in stop() }
}

struct UDPSinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp-sink", abstract: "Count UDP datagrams per flow (recvmmsg batches) until idle, timeout or SIGINT.")

    @Option(help: "UDP port to listen on (IPv4 and IPv6).")
    var port: UInt16 = 9000
    @Option(help: "Stop after this many seconds.")
    var duration = 60.0
    @Option(help: "Stop after this many seconds without packets, once some arrived.")
    var idleTimeout = 2.0
    @Option(help: "Create this file once listening.")
    var readyFile: String?

    func run() throws {
        try guarded {
            let sink = try UDPSink(port: port, duration: duration, idleTimeout: idleTimeout)
            stopOnTerminationSignals { sink.stop() }
            if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }
            FileHandle.standardError.write(Data("ready\n".utf8))
            try printLine(sink.run())
        }
    }
}

struct PktgenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pktgen",
        abstract: "Send UDP frames with the kernel's pktgen (this namespace's /proc/net/pktgen).",
        discussion: """
            Without --inject the frames leave through --device. With --inject \
            they enter the stack as if --device had received them (pktgen's \
            netif_receive mode): at the host side of a VM's bridge port, the \
            VM sending them, without its cost. A frame the flowtable forwards \
            counts among pktgen's errors then (the stack reports it stolen): \
            count what arrives at the receiver (drop-sink).
            """)

    @Option(help: "Device to send from or inject at (the base device; use --vlan for tagged frames).")
    var device: String
    @Flag(help: "Inject the frames as received by --device (xmit_mode netif_receive).")
    var inject = false
    @Option(help: "Destination address.")
    var to: String
    @Option(help: ArgumentHelp("Source address of the frames; IPv4 also FIRST-LAST, stepped with the port.", valueName: "addr"))
    var from: String?
    @Option(help: "Destination MAC: the next hop's (for a guest, its gateway's).")
    var dstMac: String
    @Option(help: "Source MAC (default: the device's; injected frames should carry the guest's).")
    var srcMac: String?
    @Option(help: "Ethernet frame size in bytes, FCS included.")
    var size = 64
    @Option(help: ArgumentHelp("UDP source ports, one flow each: PORT or FIRST-LAST.", valueName: "ports"))
    var srcPorts = "10000"
    @Option(help: ArgumentHelp("UDP destination ports: PORT or FIRST-LAST.", valueName: "ports"))
    var dstPorts = "9000"
    @Option(help: "Seconds to send.")
    var duration = 3.0
    @Option(help: "Stop after this many frames (--duration still bounds the run).")
    var count: Int?
    @Option(help: "802.1Q id to tag the frames with.")
    var vlan: UInt16?

    static func ports(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(parts.count), let first = parts.first ?? nil, let last = parts.last ?? nil,
              (1...65535).contains(first), (first...65535).contains(last) else { return nil }
        return first...last
    }

    func validate() throws {
        for (name, text) in [("--src-ports", srcPorts), ("--dst-ports", dstPorts)] where Self.ports(text) == nil {
            throw ValidationError("\(name) \(text) is not PORT or FIRST-LAST within 1-65535")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
    }

    func run() throws {
        try guarded {
            var sender = PktgenSender(device: device, destination: to, destinationMAC: dstMac, frameSize: size, flows: 1,
                                      duration: duration, vlanID: vlan)
            sender.mode = inject ? .inject : .transmit
            sender.sourceMAC = srcMac
            let range = from?.split(separator: "-", maxSplits: 1).map(String.init)
            sender.source = range?.first
            sender.sourceLast = range?.count == 2 ? range?.last : nil
            sender.sourcePorts = Self.ports(srcPorts)!
            sender.destinationPorts = Self.ports(dstPorts)!
            sender.count = count
            try printLine(try sender.run())
        }
    }
}

struct DropSinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drop-sink",
        abstract: "Count and drop every UDP packet at a device's ingress (or egress) until SIGINT or --duration.")

    @Option(help: "The receiving device.")
    var device: String
    @Option(help: "ingress (a device whose receiver is this host or namespace) or egress (a tap whose reader is a VM).")
    var hook: DropSink.Hook = .ingress
    @Option(help: "Stop after this many seconds.")
    var duration = 60.0
    @Option(help: "Create this file once counting.")
    var readyFile: String?

    func run() throws {
        try guarded {
            let sink = try DropSink(device: device, hook: hook)
            stopOnTerminationSignals { sink.stop() }
            if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }
            try printLine(try sink.run(duration: duration))
        }
    }
}

extension DropSink.Hook: ExpressibleByArgument {}

struct ConntrackCountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conntrack", abstract: "This namespace's conntrack entries and how many are offloaded (JSON).")

    func run() throws {
        try guarded { try printLine(try ConntrackReader().summary()) }
    }
}

/// Options every server takes.
struct ServerOptions: ParsableArguments {
    @Option(help: "TCP port to listen on (IPv4 and IPv6).")
    var port: UInt16 = 9000
    @Option(help: "Stop after this many seconds without connections, once some came.")
    var idleTimeout = 2.0
    @Option(help: "Create this file once listening.")
    var readyFile: String?

    func ready(stop: @escaping @Sendable () -> Void) {
        stopOnTerminationSignals(stop)
        if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }
        FileHandle.standardError.write(Data("ready\n".utf8))
    }
}


struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Server ADDRESS:PORT ([v6]:port for IPv6).", valueName: "addr:port"))
    var to: String
    @Option(help: "Seconds to run.")
    var duration = 3.0
    func validate() throws {
        guard Endpoint(to) != nil else { throw ValidationError("--to \(to) is not ADDRESS:PORT") }
    }
    var endpoint: Endpoint { Endpoint(to)! }
}

struct TCPSinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tcp-sink", abstract: "Count the bytes of TCP streams.")
    @OptionGroup var server: ServerOptions
    func run() throws {
        try guarded {
            let sink = try TCPSink(port: server.port, idleTimeout: server.idleTimeout)
            server.ready { sink.stop() }
            try printLine(sink.run())
        }
    }
}

struct TCPSendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tcp-send", abstract: "Bulk TCP streams.")
    @OptionGroup var client: ClientOptions
    @Option(help: "Parallel streams.")
    var streams = 1
    func run() throws {
        try guarded {
            try printLine(try TCPBulkSender(target: client.endpoint, streams: streams, duration: client.duration).run())
        }
    }
}

struct CRRServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crr-server", abstract: "Answer one 64-byte request per connection, then close.")
    @OptionGroup var server: ServerOptions
    func run() throws {
        try guarded {
            let rr = try RequestResponseServer(port: server.port, persistent: false, idleTimeout: server.idleTimeout)
            server.ready { rr.stop() }
            try printLine(rr.run())
        }
    }
}

struct CRRClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crr-client", abstract: "Connect, request, response, close: flow setup rate.")
    @OptionGroup var client: ClientOptions
    @Option(help: "Concurrent workers.")
    var workers = 1
    func run() throws {
        try guarded {
            try printLine(try RequestResponseClient(target: client.endpoint, workers: workers, duration: client.duration,
                                                    persistent: false).run())
        }
    }
}

struct RRServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rr-server", abstract: "Answer 64-byte requests on persistent connections.")
    @OptionGroup var server: ServerOptions
    func run() throws {
        try guarded {
            let rr = try RequestResponseServer(port: server.port, persistent: true, idleTimeout: server.idleTimeout)
            server.ready { rr.stop() }
            try printLine(rr.run())
        }
    }
}

struct RRClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rr-client", abstract: "Request/response latency percentiles (HdrHistogram).")
    @OptionGroup var client: ClientOptions
    @Option(help: "Persistent connections, one worker each.")
    var connections = 1
    func run() throws {
        try guarded {
            try printLine(try RequestResponseClient(target: client.endpoint, workers: connections, duration: client.duration,
                                                    persistent: true).run())
        }
    }
}

struct TapRelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tap-relay",
        abstract: "Stand in for a VM's NIC: relay frames between a host tap and a device in a namespace.")
    @Option(help: "The host's tap device (a bridge port).")
    var tap: String
    @Option(help: "The guest's network namespace (/run/netns/NAME).")
    var netns: String
    @Option(help: "The device inside the namespace the guest's side is (a veth end).")
    var device: String

    func run() throws {
        try guarded {
            try TapRelay(tap: tap, namespacePath: netns, guestDevice: device).run {
                FileHandle.standardError.write(Data("ready\n".utf8))
            }
        }
    }
}
