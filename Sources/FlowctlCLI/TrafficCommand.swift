import ArgumentParser
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
        subcommands: [UDPSendCommand.self, UDPSinkCommand.self, PktgenCommand.self, TCPSinkCommand.self,
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
/// context (where only async-signal-safe calls may run): the signals are
/// ignored and dispatch sources deliver them. Kept for the process's life.
func stopOnTerminationSignals(_ stop: @escaping @Sendable () -> Void) {
    for number in [SIGINT, SIGTERM] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler(handler: stop)
        source.resume()
        TerminationSignals.shared.keep(source)
    }
}

/// Holds the signal sources for the process's life (a released source stops).
/// @unchecked Sendable: the array is only appended to, under the lock, and never read.
final class TerminationSignals: @unchecked Sendable {
    static let shared = TerminationSignals()
    private let lock = NSLock()
    private var sources: [any DispatchSourceSignal] = []
    func keep(_ source: any DispatchSourceSignal) { lock.withLock { sources.append(source) } }
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
        commandName: "pktgen", abstract: "Send UDP frames with the kernel's pktgen (this namespace's /proc/net/pktgen).")

    @Option(help: "Device to send from (the base device; use --vlan for tagged frames).")
    var device: String
    @Option(help: "Destination address.")
    var to: String
    @Option(help: "Source address of the frames.")
    var from: String?
    @Option(help: "Destination MAC (default: the --gateway's, from the neighbour table).")
    var dstMac: String?
    @Option(help: "Next hop whose MAC the frames go to.")
    var gateway: String?
    @Option(help: "Ethernet frame size in bytes, FCS included.")
    var size = 64
    @Option(help: "Flows: distinct UDP source ports.")
    var flows = 1
    @Option(help: "Seconds to send.")
    var duration = 3.0
    @Option(help: "802.1Q id to tag the frames with.")
    var vlan: UInt16?
    @Option(help: "UDP destination port.")
    var port: UInt16 = 9000

    func run() throws {
        try guarded {
            var mac = dstMac
            if mac == nil, let gateway {
                mac = try neighbourMAC(gateway)
            }
            guard let mac else { throw ValidationError("--dst-mac or --gateway is required") }
            var sender = PktgenSender(device: device, destination: to, destinationMAC: mac, frameSize: size, flows: flows,
                                      duration: duration, vlanID: vlan, destinationPort: port)
            sender.source = from
            try printLine(try sender.run())
        }
    }

    /// The MAC of `address`: one ping fills the neighbour table, `ip neigh` reads it.
    func neighbourMAC(_ address: String) throws -> String {
        func run(_ argv: [String]) throws -> String { try Subprocess.run(argv, standardError: .discard).stdout }
        _ = try run(["ping", "-c", "1", "-W", "1", address])
        let words = try run(["ip", "neigh", "show", address]).split(separator: " ")
        guard let index = words.firstIndex(of: "lladdr"), index + 1 < words.count else {
            throw ValidationError("no MAC address for \(address) in the neighbour table (is it reachable?)")
        }
        return String(words[index + 1])
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
