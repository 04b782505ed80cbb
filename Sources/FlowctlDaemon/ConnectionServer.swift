import CFlowctlNet
import FlowctlProcess
import Foundation
import Glibc
import Logging
import Synchronization

/// Serves short request/response stream connections (the control socket,
/// the metrics endpoint) on a thread of its own, many at once, so that no
/// client can hold up the daemon's event loop or another client:
///
/// - every socket is non-blocking and multiplexed with poll();
/// - a request must arrive whole within `requestDeadline` of the accept,
///   an answer must be taken within `responseDeadline` of being ready;
///   a client that misses either is dropped;
/// - at most `maxConnections` are open; more get `overloaded` and are closed;
/// - requests are cut off at `maxRequestBytes`.
///
/// `handle` runs on the server's thread and answers through `Reply`, at
/// once or later from any thread (the control socket hands requests to the
/// event loop and replies when it has run them).
public final class ConnectionServer: Sendable {
    public struct Limits: Sendable {
        public var maxConnections = 256
        public var maxRequestBytes = 64 * 1024
        public var requestDeadline: Duration = .seconds(2)
        public var responseDeadline: Duration = .seconds(5)
        public init() {}
    }

    /// Who is on the other end (SO_PEERCRED; nil for TCP).
    public struct Peer: Sendable, CustomStringConvertible {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
        /// Supplementary groups (SO_PEERGROUPS).
        public var groups: [gid_t]
        public var description: String { "pid \(pid) uid \(uid)" }
    }

    /// What the bytes received so far are.
    public enum Framing: Sendable {
        case incomplete
        case complete(Data)
        /// Answer this and close (a malformed start, say).
        case reject(Data)
    }

    /// How a request is answered: once, from any thread.
    public struct Reply: Sendable {
        let server: ConnectionServer
        let connection: UInt64
        public func send(_ data: Data) { server.enqueue(data, for: connection) }
    }

    public struct Handlers: Sendable {
        /// Splits the bytes received so far; `ended`: the client shut down its side.
        public var frame: @Sendable (_ received: Data, _ ended: Bool) -> Framing
        public var handle: @Sendable (_ request: Data, _ peer: Peer?, _ reply: Reply) -> Void
        /// Sent (best effort) to a client over `maxConnections`, a late or
        /// oversized request.
        public var refusal: @Sendable (_ why: String) -> Data
        public init(frame: @escaping @Sendable (Data, Bool) -> Framing,
                    handle: @escaping @Sendable (Data, Peer?, Reply) -> Void,
                    refusal: @escaping @Sendable (String) -> Data) {
            self.frame = frame
            self.handle = handle
            self.refusal = refusal
        }
    }

    public let name: String
    let listeners: [Int32]
    let limits: Limits
    let handlers: Handlers
    let logger: Logger
    /// Answers ready to go out, by connection, and whether to stop.
    private let outbox = Locked<(answers: [UInt64: Data], stopping: Bool)>(([:], false))
    /// Wakes the server's poll() (an answer is ready, or stop).
    private let wakePipe = WakePipe()
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    private let listenersClosed = Atomic<Bool>(false)

    /// `listeners`: bound, listening, non-blocking sockets; the server closes them.
    public init(name: String, listeners: [Int32], limits: Limits = Limits(), handlers: Handlers, logger: Logger) {
        self.name = name
        self.listeners = listeners
        self.limits = limits
        self.handlers = handlers
        self.logger = logger
    }

    deinit { closeListeners() }

    /// Releases the listening sockets (their addresses) once, at stop or deinit.
    private func closeListeners() {
        guard !listenersClosed.exchange(true, ordering: .sequentiallyConsistent) else { return }
        for fd in listeners { close(fd) }
    }

    public func start() {
        started.store(true, ordering: .sequentiallyConsistent)
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops serving; open connections are closed. Returns when the thread
    /// has, with the listening sockets closed (their addresses free again).
    public func stop() {
        outbox.withLock { $0.stopping = true }
        wake()
        if started.load(ordering: .sequentiallyConsistent) { finished.wait() }
        closeListeners()
    }

    func enqueue(_ data: Data, for connection: UInt64) {
        outbox.withLock { $0.answers[connection] = data }
        wake()
    }

    private func wake() { wakePipe.wake() }

    // MARK: The server's thread: everything below touches only its own state.

    private final class Connection {
        let id: UInt64
        let fd: Int32
        let peer: Peer?
        var received = Data()
        var ended = false
        /// Set once the request is whole and handed on.
        var dispatched = false
        var answer: Data?
        var written = 0
        var deadline: ContinuousClock.Instant
        init(id: UInt64, fd: Int32, peer: Peer?, deadline: ContinuousClock.Instant) {
            self.id = id
            self.fd = fd
            self.peer = peer
            self.deadline = deadline
        }
    }

    private func run() {
        var connections: [Int32: Connection] = [:]
        var nextID: UInt64 = 0
        defer { for connection in connections.values { close(connection.fd) } }
        while true {
            // Answers handed back since the last round.
            let (answers, stopping) = outbox.withLock { state in
                let taken = state.answers
                state.answers = [:]
                return (taken, state.stopping)
            }
            if stopping { return }
            if !answers.isEmpty {
                for connection in connections.values {
                    if let answer = answers[connection.id] { respond(connection, answer) }
                }
            }
            // Deadlines.
            let now = ContinuousClock.now
            for (fd, connection) in connections where connection.deadline <= now {
                if !connection.dispatched {
                    logger.notice("\(name): dropped a client that sent no whole request within \(limits.requestDeadline)",
                                  metadata: connection.peer.map { ["peer": "\($0)"] } ?? [:])
                    sendBestEffort(fd, handlers.refusal("no whole request within \(limits.requestDeadline)"))
                } else if connection.answer != nil {
                    logger.notice("\(name): dropped a client that did not take its answer within \(limits.responseDeadline)")
                }
                // A dispatched request still being handled keeps its connection.
                if !connection.dispatched || connection.answer != nil {
                    close(fd)
                    connections[fd] = nil
                }
            }
            // Wait.
            var descriptors = [pollfd(fd: wakePipe.descriptor, events: Int16(POLLIN), revents: 0)]
            descriptors += listeners.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // A request being handled is not polled: its client may hang up
            // meanwhile (POLLHUP cannot be masked), and is read no further.
            for connection in connections.values where !connection.dispatched || connection.answer != nil {
                let events = connection.answer != nil ? POLLOUT : POLLIN
                descriptors.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
            }
            let soonest = connections.values.filter { !$0.dispatched || $0.answer != nil }.map(\.deadline).min()
            let timeout = soonest.map { Int32(clamping: max(0, ($0 - .now).nanoseconds / 1_000_000 + 1)) } ?? -1
            if poll(&descriptors, nfds_t(descriptors.count), timeout) < 0 {
                if errno == EINTR { continue }
                logger.critical("\(name): poll failed: \(String(cString: strerror(errno)))")
                return
            }
            if descriptors[0].revents != 0 { wakePipe.drain() }
            for descriptor in descriptors.dropFirst(1 + listeners.count) where descriptor.revents != 0 {
                guard let connection = connections[descriptor.fd] else { continue }
                let open = connection.answer != nil ? writeSome(connection) : readSome(connection)
                if !open {
                    close(connection.fd)
                    connections[connection.fd] = nil
                }
            }
            for descriptor in descriptors[1...listeners.count] where descriptor.revents & Int16(POLLIN) != 0 {
                acceptAll(descriptor.fd, into: &connections, nextID: &nextID)
            }
        }
    }

    private func acceptAll(_ listener: Int32, into connections: inout [Int32: Connection], nextID: inout UInt64) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK {
                    logger.warning("\(name): accept failed: \(String(cString: strerror(errno)))")
                }
                return
            }
            // (accept4 is a GNU extension Glibc does not import.)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            guard connections.count < limits.maxConnections else {
                logger.warning("\(name): \(limits.maxConnections) clients already connected; refused one")
                sendBestEffort(fd, handlers.refusal("too many clients (\(limits.maxConnections)); try again"))
                close(fd)
                continue
            }
            nextID += 1
            connections[fd] = Connection(id: nextID, fd: fd, peer: peerCredentials(fd),
                                         deadline: .now + limits.requestDeadline)
        }
    }

    /// Reads what is there; hands a whole request on. false: close it.
    private func readSome(_ connection: Connection) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while !connection.ended {
            let count = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return false
            }
            if count == 0 { connection.ended = true; break }
            connection.received.append(contentsOf: chunk[0..<count])
            if connection.received.count > limits.maxRequestBytes {
                sendBestEffort(connection.fd, handlers.refusal("request larger than \(limits.maxRequestBytes) bytes"))
                return false
            }
        }
        switch handlers.frame(connection.received, connection.ended) {
        case .incomplete:
            // A client that ended without a whole request gets nothing more.
            return !connection.ended
        case .reject(let answer):
            respond(connection, answer)
            return true
        case .complete(let request):
            connection.dispatched = true
            handlers.handle(request, connection.peer, Reply(server: self, connection: connection.id))
            return true
        }
    }

    private func respond(_ connection: Connection, _ answer: Data) {
        connection.dispatched = true
        connection.answer = answer
        connection.written = 0
        connection.deadline = .now + limits.responseDeadline
    }

    /// Writes what the socket takes. false: done or failed, close it.
    private func writeSome(_ connection: Connection) -> Bool {
        guard let answer = connection.answer else { return false }
        while connection.written < answer.count {
            let count = answer.withUnsafeBytes {
                send(connection.fd, $0.baseAddress! + connection.written, $0.count - connection.written, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
            connection.written += count
        }
        return false
    }

    private func sendBestEffort(_ fd: Int32, _ data: Data) {
        _ = data.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    private func peerCredentials(_ fd: Int32) -> Peer? {
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard flowctl_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return nil }
        var groups = [gid_t](repeating: 0, count: 256)
        var groupsLength = socklen_t(groups.count * MemoryLayout<gid_t>.size)
        var count = 0
        if getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &groups, &groupsLength) == 0 {
            count = Int(groupsLength) / MemoryLayout<gid_t>.size
        }
        return Peer(pid: pid, uid: uid, gid: gid, groups: Array(groups.prefix(count)))
    }
}
