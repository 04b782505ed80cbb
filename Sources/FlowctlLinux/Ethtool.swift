import CLibNLRoute
import FlowctlCore
import Glibc

/// The ethtool "hw-tc-offload" feature: whether a NIC can take flows in
/// hardware (`flags offload`). Virtual devices never can, so only
/// physical NICs, bonds and VLANs on them are asked.
final class EthtoolReader {
    private let fd: Int32
    private var index: Int32?

    init() {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit { if fd >= 0 { close(fd) } }

    static func mayOffload(_ kind: LinkKind) -> Bool {
        switch kind {
        case .physical, .bond, .vlan, .other: true
        default: false
        }
    }

    /// nil when the device cannot be asked (no ethtool ops, gone).
    func hwTCOffload(_ name: String, kind: LinkKind) -> Bool? {
        guard Self.mayOffload(kind) else { return false }
        guard fd >= 0 else { return nil }
        if index == nil {
            let found = flowctl_ethtool_feature_index(fd, name, "hw-tc-offload")
            guard found >= 0 else { return nil }
            index = found
        }
        let active = flowctl_ethtool_feature_active(fd, name, index!)
        return active < 0 ? nil : active == 1
    }
}
