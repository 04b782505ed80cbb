import CLibMnl
import CLibNftnl
import FlowctlCore
import Glibc

/// Table, rule and chain comments: nftnl_udata TLVs (u8 type, u8 length,
/// value), the comment under type 0 as a NUL-terminated string.
enum UserData {
    static let commentType: UInt8 = 0

    static func encodeComment(_ comment: String) -> [UInt8] {
        var value = Array(comment.utf8.prefix(127))
        value.append(0)
        return [commentType, UInt8(value.count)] + value
    }

    static func decodeComment(_ bytes: [UInt8]) -> String? {
        var offset = 0
        while offset + 2 <= bytes.count {
            let type = bytes[offset], length = Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { return nil }
            if type == commentType {
                let value = bytes[(offset + 2)..<(offset + 2 + length)].prefix { $0 != 0 }
                return String(decoding: value, as: UTF8.self)
            }
            offset += 2 + length
        }
        return nil
    }
}

/// An interface name as an nft `ifname` key: IFNAMSIZ bytes, NUL padded.
func ifnameKey(_ name: String) -> [UInt8] {
    var key = Array(name.utf8.prefix(NftConst.IFNAMSIZ - 1))
    key += [UInt8](repeating: 0, count: NftConst.IFNAMSIZ - key.count)
    return key
}

func ifname(fromKey bytes: [UInt8]) -> String {
    String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

/// Calls body with a NULL-terminated C array of the strings.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
}

func cString(_ pointer: UnsafePointer<CChar>?) -> String? { pointer.map { String(cString: $0) } }
