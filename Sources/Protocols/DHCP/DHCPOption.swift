import NIOCore

/// One DHCP option (RFC 2132 TLV) with its whole value. Values longer than 255 bytes are legal
/// here: the encoder splits them into several instances and the decoder joins repeated
/// instances again (RFC 3396 §7-§8).
public struct DHCPOption: Sendable, Hashable {
    public var code: UInt8
    public var value: [UInt8]

    public init(code: UInt8, value: [UInt8]) {
        self.code = code
        self.value = value
    }

    public static let pad: UInt8 = 0
    public static let end: UInt8 = 255
}

/// The options of a message in first-seen order, one entry per code (RFC 3396 pieces joined).
/// Pad (0), end (255) and overload (52) are framing, not content: the decoder consumes them
/// and the encoder writes them.
public struct DHCPOptions: Sendable, Equatable, RandomAccessCollection {
    public private(set) var list: [DHCPOption]

    public init(_ list: [DHCPOption] = []) {
        self.list = []
        self.list.reserveCapacity(list.count)
        for option in list { append(joining: option) }
    }

    public var startIndex: Int { list.startIndex }
    public var endIndex: Int { list.endIndex }
    public subscript(position: Int) -> DHCPOption { list[position] }

    /// The value for `code`, or nil.
    public subscript(code code: UInt8) -> [UInt8]? {
        get { list.first { $0.code == code }?.value }
        set {
            if let value = newValue { set(code, value) } else { remove(code) }
        }
    }

    public func contains(_ code: UInt8) -> Bool { list.contains { $0.code == code } }

    /// Replaces the value in place (keeping its position) or appends.
    public mutating func set(_ code: UInt8, _ value: [UInt8]) {
        guard code != DHCPOption.pad, code != DHCPOption.end else { return }
        if let index = list.firstIndex(where: { $0.code == code }) {
            list[index].value = value
        } else {
            list.append(DHCPOption(code: code, value: value))
        }
    }

    mutating func reserveCapacity(_ count: Int) { list.reserveCapacity(count) }

    public mutating func remove(_ code: UInt8) { list.removeAll { $0.code == code } }

    /// RFC 3396 §7: a repeated code continues the first instance's value.
    mutating func append(joining option: DHCPOption) {
        guard option.code != DHCPOption.pad, option.code != DHCPOption.end else { return }
        if let index = list.firstIndex(where: { $0.code == option.code }) {
            list[index].value += option.value
        } else {
            list.append(option)
        }
    }

    /// Options by code, as `BootRequest.options` wants them.
    public var byCode: [UInt8: [UInt8]] {
        var result: [UInt8: [UInt8]] = Dictionary(minimumCapacity: list.count)
        for option in list { result[option.code] = option.value }
        return result
    }
}

// MARK: - TLV area parsing and writing (shared by options, option 43, 82 and 175)

enum TLV {
    /// Parses a TLV area. Pads are skipped, 255 ends it (the rest is ignored, RFC 2131 §4.1).
    /// Throws `optionOverrun` when a length runs past the end. Repeated codes are returned as
    /// separate entries (callers decide whether to join).
    static func parse(
        _ bytes: ArraySlice<UInt8>, area: String, endsWith255: Bool = true, hasPad: Bool = true
    ) throws -> (entries: [DHCPOption], sawEnd: Bool) {
        var entries: [DHCPOption] = []
        // A PXE request carries 8-15 options: one allocation instead of growing 4 times.
        entries.reserveCapacity(16)
        let sawEnd = try bytes.withUnsafeBytes { raw in
            try walk(raw, area: area, endsWith255: endsWith255, hasPad: hasPad) { code, value in
                entries.append(DHCPOption(code: code, value: Array(value)))
            }
        }
        return (entries, sawEnd)
    }

    /// The rule under `parse`: calls `body` with each instance's code and value, in place (a
    /// message's own options are decoded straight from the receive buffer with no copy of the
    /// area and no list of instances in between). Returns whether 255 ended the area.
    @inline(__always)
    static func walk(
        _ bytes: UnsafeRawBufferPointer, area: String, endsWith255: Bool = true, hasPad: Bool = true,
        _ body: (UInt8, UnsafeRawBufferPointer) throws -> Void
    ) throws -> Bool {
        var index = 0
        let end = bytes.count
        while index < end {
            let code = bytes[index]
            if code == DHCPOption.pad && hasPad { index += 1; continue }
            if code == DHCPOption.end && endsWith255 { return true }
            guard index + 1 < end else { throw DHCPError.optionOverrun(code: code, area: area) }
            let length = Int(bytes[index + 1])
            let start = index + 2
            guard start + length <= end else { throw DHCPError.optionOverrun(code: code, area: area) }
            try body(code, UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
            index = start + length
        }
        return false
    }

    /// The instances `code` with `value` is written as: 255-byte pieces (RFC 3396 §6); an
    /// empty value is one zero-length instance. Both writers below go through here.
    @inline(__always)
    static func pieces(of value: [UInt8], _ emit: (ArraySlice<UInt8>) -> Void) {
        var offset = 0
        repeat {
            let chunk = min(255, value.count - offset)
            emit(value[offset..<(offset + chunk)])
            offset += chunk
        } while offset < value.count
    }

    /// The bytes `pieces(of:)` makes of `value`: two per instance, plus the value.
    static func encodedLength(of value: [UInt8]) -> Int {
        value.count + 2 * max(1, (value.count + 254) / 255)
    }

    /// Writes `code` with `value` as TLV instances into `bytes`.
    static func write(code: UInt8, value: [UInt8], into bytes: inout [UInt8]) {
        pieces(of: value) { piece in
            bytes.append(code)
            bytes.append(UInt8(piece.count))
            bytes.append(contentsOf: piece)
        }
    }

    /// The same, straight into a buffer (the reply, with no area in between).
    static func write(code: UInt8, value: [UInt8], into buffer: inout ByteBuffer) {
        pieces(of: value) { piece in
            buffer.writeInteger(code)
            buffer.writeInteger(UInt8(piece.count))
            buffer.writeBytes(piece)
        }
    }
}
