import CFlowctlNet
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Stands in for a VM's NIC emulation (what QEMU does with a tap): holds
/// the host's tap device open and moves every frame between it and a
/// device inside the guest's namespace, through an AF_PACKET socket.
/// Run as its own process: it moves its thread into the guest namespace.
public struct TapRelay: Sendable {
    public var tap: String
    public var namespacePath: String
    public var guestDevice: String

    public init(tap: String, namespacePath: String, guestDevice: String) {
        self.tap = tap
        self.namespacePath = namespacePath
        self.guestDevice = guestDevice
    }

    /// Attaches and relays until killed; calls `ready` once both ends are open.
    public func run(ready: () -> Void) throws -> Never {
        let tapFD = flowctl_tap_open(tap)
        guard tapFD >= 0 else { throw TrafficError("open tap \(tap)", -tapFD) }
        let moved = flowctl_setns_net(namespacePath)
        guard moved == 0 else { throw TrafficError("enter \(namespacePath)", -moved) }
        let packetFD = flowctl_packet_socket(guestDevice)
        guard packetFD >= 0 else { throw TrafficError("packet socket on \(guestDevice)", -packetFD) }
        ready()
        // One thread per direction; a frame is at most 64 KiB (GSO off on both ends is not needed: MTU-sized here).
        Thread { Self.copy(from: packetFD, to: tapFD) }.start()
        Self.copy(from: tapFD, to: packetFD)
        exit(0)
    }

    static func copy(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536 + 64)  // a GSO frame and its virtio-net header
        var reported = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count > 0 {
                _ = buffer.withUnsafeBytes { write(destination, $0.baseAddress, count) }
                continue
            }
            let code = count == 0 ? 0 : errno
            if code == EINTR || code == EAGAIN { continue }
            if code == EBADF || count == 0 { return }
            // A transient refusal (the device down for a moment): say it once, go on.
            if !reported {
                FileHandle.standardError.write(Data("tap-relay: read: \(String(cString: strerror(code)))\n".utf8))
                reported = true
            }
            usleep(1000)
        }
    }
}
