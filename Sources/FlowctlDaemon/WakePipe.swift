import Glibc

/// A self-pipe that wakes a poll() loop from another thread: `wake()` from
/// anywhere, the loop polls `descriptor` and `drain()`s it. Both ends are
/// non-blocking and close-on-exec; a full pipe is already a pending wake-up.
final class WakePipe: Sendable {
    let descriptor: Int32
    private let writer: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        _ = pipe(&ends)
        for fd in ends {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        descriptor = ends[0]
        writer = ends[1]
    }

    deinit {
        close(descriptor)
        close(writer)
    }

    func wake() {
        var one: UInt8 = 1
        _ = write(writer, &one, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while buffer.withUnsafeMutableBytes({ read(descriptor, $0.baseAddress, $0.count) }) > 0 {}
    }
}
