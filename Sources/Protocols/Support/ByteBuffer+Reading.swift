import NIOCore

// Bounds-checked helpers for the wire codecs. Every helper returns nil (and leaves the reader
// index where it was) when the buffer is too short, so a truncated packet becomes a typed
// error at the call site and never a trap.
extension ByteBuffer {
    /// Reads exactly `count` bytes, or nothing.
    @inlinable
    mutating func readBytesIfAvailable(_ count: Int) -> [UInt8]? {
        guard count >= 0, readableBytes >= count else { return nil }
        return readBytes(length: count)
    }

    /// Reads a fixed-size, NUL-padded text field (RFC 2131 §2 `sname`/`file`): the raw bytes.
    /// An all-zero field (most requests' `sname` and `file`) comes back as a shared array, so
    /// it costs no allocation.
    mutating func readFixedField(_ count: Int) -> [UInt8]? {
        guard count >= 0, readableBytes >= count else { return nil }
        let zero = withUnsafeReadableBytes { bytes in
            var any: UInt8 = 0
            for index in 0..<count { any |= bytes[index] }
            return any == 0
        }
        if zero, let shared = ZeroFields.shared(count) {
            moveReaderIndex(forwardBy: count)
            return shared
        }
        return readBytes(length: count)
    }

    @inlinable
    mutating func readIPv4Address() -> IPv4Address? {
        readInteger(as: UInt32.self).map(IPv4Address.init(rawValue:))
    }

    @inlinable
    mutating func writeIPv4Address(_ address: IPv4Address) {
        writeInteger(address.rawValue)
    }

    /// Writes `bytes` into a field of exactly `count` bytes: truncated or zero-padded.
    @inlinable
    mutating func writeFixedField(_ bytes: [UInt8], count: Int) {
        let used = Swift.min(bytes.count, count)
        writeBytes(bytes[0..<used])
        if used < count { writeRepeatingByte(0, count: count - used) }
    }
}

/// Zero-filled `chaddr`, `sname` and `file` fields, allocated once and shared (copy on write).
enum ZeroFields {
    static let chaddr = [UInt8](repeating: 0, count: 16)
    static let sname = [UInt8](repeating: 0, count: 64)
    static let file = [UInt8](repeating: 0, count: 128)

    static func shared(_ count: Int) -> [UInt8]? {
        switch count {
        case 16: return chaddr
        case 64: return sname
        case 128: return file
        default: return nil
        }
    }
}

/// Bytes to lower-case hex, and back.
public enum Hex {
    public static func encode<C: Collection>(_ bytes: C, separator: String = "") -> String
    where C.Element == UInt8 {
        let separator = Array(separator.utf8)
        let capacity = bytes.count * 2 + max(0, bytes.count - 1) * separator.count
        guard capacity > 0 else { return "" }
        // Written straight into the string's storage: every DHCP request formats its MAC.
        return String(unsafeUninitializedCapacity: capacity) { buffer in
            var at = 0
            for byte in bytes {
                if at > 0 { for s in separator { buffer[at] = s; at += 1 } }
                buffer[at] = digit(byte >> 4); buffer[at + 1] = digit(byte & 0x0F)
                at += 2
            }
            return at
        }
    }

    @inline(__always)
    static func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 48 + nibble : 87 + nibble }

    /// Accepts upper or lower case, ignores whitespace and ':'/'-' separators; nil on odd length
    /// or a non-hex character.
    public static func decode(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var high: UInt8?
        for unit in text.utf8 {
            let nibble: UInt8
            switch unit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = unit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = unit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = unit - UInt8(ascii: "A") + 10
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r"),
                 UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default: return nil
            }
            if let h = high {
                bytes.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return high == nil ? bytes : nil
    }
}

/// Text helpers shared by the codecs.
enum ByteText {
    /// The bytes up to the first NUL, as UTF-8 (invalid sequences repaired).
    static func cString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let prefix = bytes.prefix { $0 != 0 }
        return String(decoding: prefix, as: UTF8.self)
    }

    /// True when every byte is printable ASCII (space through '~').
    static func isPrintable<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        !bytes.isEmpty && bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    /// Printable ASCII as text, anything else as lower-case hex.
    static func display<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        isPrintable(bytes) ? String(decoding: bytes, as: UTF8.self) : Hex.encode(bytes)
    }
}
