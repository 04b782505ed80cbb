import CLibMnl

/// One netlink attribute (struct nlattr): its type, with the nested and
/// byte-order flags masked off (NLA_TYPE_MASK), and its payload, a slice of
/// the message it was read from (nothing is copied).
struct NetlinkAttribute: Equatable {
    var type: UInt16
    var payload: ArraySlice<UInt8>

    /// The attributes nested in this one.
    var nested: NetlinkAttributes { NetlinkAttributes(payload) }

    /// Text up to the first NUL (or the whole payload without one).
    var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }

    /// A 32-bit value in network order (nfnetlink attributes), from the
    /// payload's first four bytes; nil when it is shorter.
    var bigEndianU32: UInt32? {
        guard payload.count >= 4 else { return nil }
        return payload.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// A 32-bit value in host order (rtnetlink attributes); nil when the payload is shorter.
    var u32: UInt32? {
        guard payload.count >= 4 else { return nil }
        return payload.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    /// The payload's first byte; nil when it is empty.
    var u8: UInt8? { payload.first }
}

/// One level of netlink attributes, walked by libmnl (mnl_attr_parse_payload):
/// the one attribute parser behind every hand-read netlink message in
/// FlowctlLinux (extended acks, nftables notifications, conntrack entries,
/// AF_BRIDGE links, nexthop deletions).
///
/// The walk stops at the first attribute that does not fit (fewer than 4
/// bytes left, a length below 4, a length past the end: libmnl's
/// mnl_attr_ok), keeping what it read before; nothing past the buffer is read.
struct NetlinkAttributes: RandomAccessCollection {
    private(set) var attributes: [NetlinkAttribute] = []

    /// The attributes filling `bytes`.
    init(_ bytes: ArraySlice<UInt8>) {
        guard bytes.count >= Self.attributeHeaderLength else { return }
        attributes = bytes.withUnsafeBytes { raw in
            var walk = Walk(bytes: bytes, base: raw.baseAddress!)
            _ = withUnsafeMutablePointer(to: &walk) {
                mnl_attr_parse_payload(raw.baseAddress, raw.count, netlinkAttributesCollect, $0)
            }
            return walk.found
        }
    }

    /// The attributes of a whole netlink message (header included in
    /// `message`) after its family header of `familyHeaderLength` bytes
    /// (nfgenmsg, struct nlmsgerr, ifinfomsg, ...), which is padded to 4
    /// bytes as the kernel pads it. Empty when the message is shorter.
    init(message: [UInt8], familyHeaderLength: Int) {
        let offset = Self.messageHeaderLength + Self.align(familyHeaderLength)
        self.init(offset <= message.count ? message[offset...] : [])
    }

    /// The first attribute of this type.
    func first(ofType type: UInt16) -> NetlinkAttribute? { attributes.first { $0.type == type } }

    var startIndex: Int { attributes.startIndex }
    var endIndex: Int { attributes.endIndex }
    subscript(position: Int) -> NetlinkAttribute { attributes[position] }

    static let messageHeaderLength = align(MemoryLayout<nlmsghdr>.size)
    static let attributeHeaderLength = align(MemoryLayout<nlattr>.size)

    /// MNL_ALIGN (a macro Swift cannot import).
    static func align(_ length: Int) -> Int {
        let to = Int(MNL_ALIGNTO)
        return (length + to - 1) & ~(to - 1)
    }

    /// The callback's context: the bytes walked, where they are in memory,
    /// and what was found.
    fileprivate struct Walk {
        let bytes: ArraySlice<UInt8>
        let base: UnsafeRawPointer
        var found: [NetlinkAttribute] = []

        init(bytes: ArraySlice<UInt8>, base: UnsafeRawPointer) {
            self.bytes = bytes
            self.base = base
            found.reserveCapacity(16)
        }
    }
}

/// mnl_attr_parse_payload calls this once per attribute that fits.
private func netlinkAttributesCollect(_ attribute: UnsafePointer<nlattr>?,
                                      _ context: UnsafeMutableRawPointer?) -> Int32 {
    guard let attribute, let walk = context?.assumingMemoryBound(to: NetlinkAttributes.Walk.self) else {
        return MNL_CB_ERROR
    }
    let payload = UnsafeRawPointer(mnl_attr_get_payload(attribute)!)
    let start = walk.pointee.bytes.startIndex + walk.pointee.base.distance(to: payload)
    let end = start + Int(mnl_attr_get_payload_len(attribute))
    walk.pointee.found.append(NetlinkAttribute(type: mnl_attr_get_type(attribute), payload: walk.pointee.bytes[start..<end]))
    return MNL_CB_OK
}
