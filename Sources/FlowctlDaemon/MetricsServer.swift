import FlowctlCore
import Foundation
import Glibc
import Logging
import Prometheus

/// Serves the Prometheus registry as text on GET /metrics: a deliberately
/// small HTTP/1.0 responder, one short request per connection, nothing
/// else exposed. Connections are served by a ConnectionServer (its own
/// thread, a deadline per request, a cap on connections), so a scraper
/// that stalls holds up no one.
public final class MetricsServer: Sendable {
    let server: ConnectionServer
    public let address: String

    public enum SetupError: Error, CustomStringConvertible {
        case address(String)
        public var description: String {
            switch self {
            case .address(let text): "invalid metrics address \(text) (expected HOST:PORT, e.g. 127.0.0.1:9464)"
            }
        }
    }

    public init(address: String, registry: PrometheusCollectorRegistry, logger: Logger) throws {
        self.address = address
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw SetupError.address(address)
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result) == 0, let info = result else {
            throw SetupError.address(address)
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw KernelError.system("metrics socket", errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, SOMAXCONN) == 0 else {
            let code = errno
            close(fd)
            throw KernelError.system("listen on \(address)", code)
        }
        var limits = ConnectionServer.Limits()
        limits.maxConnections = 64
        limits.maxRequestBytes = 8192
        server = ConnectionServer(name: "flowctl-metrics", listeners: [fd], limits: limits, handlers: .init(
            frame: { received, ended in
                // The request line is all that matters; headers end at a blank line.
                let text = String(decoding: received, as: UTF8.self)
                return text.contains("\r\n\r\n") || text.contains("\n\n") || (ended && !received.isEmpty)
                    ? .complete(received) : .incomplete
            },
            handle: { request, _, reply in
                let line = String(decoding: request, as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" }
                if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                    let body = registry.emitToBuffer()
                    reply.send(Data("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + Data(body))
                } else {
                    reply.send(Self.plain("404 Not Found", "flowctl metrics: GET /metrics\n"))
                }
            },
            refusal: { why in Self.plain("503 Service Unavailable", "flowctl metrics: \(why)\n") }), logger: logger)
    }

    static func plain(_ status: String, _ body: String) -> Data {
        Data("HTTP/1.0 \(status)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
    }

    public func start() { server.start() }

    public func stop() { server.stop() }
}
