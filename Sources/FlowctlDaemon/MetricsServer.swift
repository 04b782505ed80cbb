import Foundation
import Glibc
import Logging
import Prometheus

/// Serves the Prometheus registry as text on GET /metrics. A deliberately
/// small HTTP/1.0 responder on its own thread: one short request per
/// connection, nothing else exposed.
public final class MetricsServer: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    let listener: Int32
    let logger: Logger
    public let address: String

    public enum SetupError: Error, CustomStringConvertible {
        case address(String)
        case system(String, Int32)
        public var description: String {
            switch self {
            case .address(let text): "invalid metrics address \(text) (expected HOST:PORT, e.g. 127.0.0.1:9464)"
            case .system(let what, let code): "\(what): \(String(cString: strerror(code)))"
            }
        }
    }

    public init(address: String, registry: PrometheusCollectorRegistry, logger: Logger) throws {
        self.registry = registry
        self.logger = logger
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
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError.system("metrics socket", errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw SetupError.system("listen on \(address)", code)
        }
        listener = fd
    }

    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "flowctl-metrics"
        thread.start()
    }

    public func stop() { shutdown(listener, Int32(SHUT_RDWR)) }

    private func serve() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var request = [UInt8](repeating: 0, count: 4096)
            let count = request.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            let line = count > 0 ? String(decoding: request[0..<count], as: UTF8.self).prefix { $0 != "\r" && $0 != "\n" } : ""
            let response: Data
            if line.hasPrefix("GET /metrics ") || line == "GET /metrics" {
                let body = registry.emitToBuffer()
                response = Data("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + Data(body)
            } else {
                let body = "flowctl metrics: GET /metrics\n"
                response = Data("HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
            }
            _ = writeAll(client, response)
            close(client)
        }
    }
}
