import NIOCore

/// A whole RFC 2131 message (BOOTP header, magic cookie, options). A pure value: no I/O.
///
/// Decoding joins repeated options (RFC 3396) and pulls options out of `file`/`sname` when
/// option 52 says so (RFC 2131 §4.1); `overload` remembers which fields carried options so
/// the encoder can do the same again. Encoding is deterministic, so
/// `decode(encode(decode(x))) == decode(x)`.
public struct DHCPMessage: Sendable, Equatable {
    public enum Op: UInt8, Sendable { case request = 1, reply = 2 }

    /// RFC 2131 §3: 99.130.83.99.
    public static let magicCookie: UInt32 = 0x6382_5363
    /// BOOTP header up to and excluding the cookie (RFC 2131 §2 figure 1).
    public static let headerLength = 236
    /// RFC 1542 §3.1.1 / dnsmasq: never send less than 300 bytes (some clients drop shorter).
    public static let minimumLength = 300

    public var op: Op
    public var htype: UInt8
    public var hlen: UInt8
    public var hops: UInt8
    public var xid: UInt32
    public var secs: UInt16
    public var flags: UInt16
    public var ciaddr: IPv4Address
    public var yiaddr: IPv4Address
    public var siaddr: IPv4Address
    public var giaddr: IPv4Address
    /// Always 16 bytes.
    public var chaddr: [UInt8]
    /// Always 64 bytes (NUL padded). Empty (all zero) when it carried options.
    public var sname: [UInt8]
    /// Always 128 bytes (NUL padded). Empty (all zero) when it carried options.
    public var file: [UInt8]
    public var magic: UInt32
    /// Option 52's value when the message used `file` (1), `sname` (2) or both (3) for options.
    public var overload: UInt8?
    public var options: DHCPOptions

    public init(
        op: Op, htype: UInt8 = 1, hlen: UInt8 = 6, hops: UInt8 = 0, xid: UInt32, secs: UInt16 = 0,
        flags: UInt16 = 0, ciaddr: IPv4Address = .any, yiaddr: IPv4Address = .any,
        siaddr: IPv4Address = .any, giaddr: IPv4Address = .any, chaddr: [UInt8] = [],
        sname: String = "", file: String = "", options: DHCPOptions = DHCPOptions()
    ) {
        self.op = op
        self.htype = htype
        self.hlen = hlen
        self.hops = hops
        self.xid = xid
        self.secs = secs
        self.flags = flags
        self.ciaddr = ciaddr
        self.yiaddr = yiaddr
        self.siaddr = siaddr
        self.giaddr = giaddr
        self.chaddr = Self.fit(chaddr, 16)
        self.sname = Self.fit(sname.utf8, 64)
        self.file = Self.fit(file.utf8, 128)
        self.magic = Self.magicCookie
        self.overload = nil
        self.options = options
    }

    /// `bytes` cut or zero-padded to `count`, in one allocation (none when empty: the shared
    /// zero field).
    static func fit<C: Collection<UInt8>>(_ bytes: C, _ count: Int) -> [UInt8] {
        if bytes.isEmpty, let zero = ZeroFields.shared(count) { return zero }
        if bytes.count == count, let array = bytes as? [UInt8] { return array }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var at = 0
            for byte in bytes.prefix(count) { buffer[at] = byte; at += 1 }
            while at < count { buffer[at] = 0; at += 1 }
            initialized = count
        }
    }

    // MARK: Convenience views

    /// RFC 2131 §2 figure 2: the leftmost bit of `flags`.
    public var broadcast: Bool {
        get { flags & 0x8000 != 0 }
        set { flags = newValue ? flags | 0x8000 : flags & ~0x8000 }
    }

    /// The first `hlen` bytes of `chaddr`, lower-case hex joined by ':'.
    public var clientMAC: String {
        Hex.encode(chaddr.prefix(Int(min(hlen, 16))), separator: ":")
    }

    /// `sname` as text up to the first NUL.
    public var serverName: String {
        get { ByteText.cString(sname) }
        set { sname = Self.fit(Array(newValue.utf8), 64) }
    }

    /// `file` as text up to the first NUL.
    public var bootFile: String {
        get { ByteText.cString(file) }
        set { file = Self.fit(Array(newValue.utf8), 128) }
    }

    // MARK: Decoding

    public init(bytes: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: bytes)
        try self.init(from: &buffer)
    }

    /// Decodes one message from the readable bytes of `buffer` (all of them are consumed).
    public init(from buffer: inout ByteBuffer) throws {
        func need<T>(_ value: T?, _ field: String, _ size: Int, _ buffer: ByteBuffer) throws -> T {
            guard let value else {
                throw DHCPError.truncated(field: field, needed: size, available: buffer.readableBytes)
            }
            return value
        }
        let rawOp = try need(buffer.readInteger(as: UInt8.self), "op", 1, buffer)
        guard let op = Op(rawValue: rawOp) else { throw DHCPError.badOp(rawOp) }
        self.op = op
        htype = try need(buffer.readInteger(as: UInt8.self), "htype", 1, buffer)
        hlen = try need(buffer.readInteger(as: UInt8.self), "hlen", 1, buffer)
        guard hlen <= 16 else { throw DHCPError.badHlen(hlen) }
        hops = try need(buffer.readInteger(as: UInt8.self), "hops", 1, buffer)
        xid = try need(buffer.readInteger(as: UInt32.self), "xid", 4, buffer)
        secs = try need(buffer.readInteger(as: UInt16.self), "secs", 2, buffer)
        flags = try need(buffer.readInteger(as: UInt16.self), "flags", 2, buffer)
        ciaddr = try need(buffer.readIPv4Address(), "ciaddr", 4, buffer)
        yiaddr = try need(buffer.readIPv4Address(), "yiaddr", 4, buffer)
        siaddr = try need(buffer.readIPv4Address(), "siaddr", 4, buffer)
        giaddr = try need(buffer.readIPv4Address(), "giaddr", 4, buffer)
        chaddr = try need(buffer.readFixedField(16), "chaddr", 16, buffer)
        sname = try need(buffer.readFixedField(64), "sname", 64, buffer)
        file = try need(buffer.readFixedField(128), "file", 128, buffer)
        magic = try need(buffer.readInteger(as: UInt32.self), "magic cookie", 4, buffer)
        guard magic == Self.magicCookie else { throw DHCPError.badMagicCookie(magic) }

        // RFC 2131 §4.1: options field first, then `file`, then `sname` when option 52 says so.
        // The options field is read where it lies in the buffer.
        var overloadValue: UInt8?
        var joined = DHCPOptions()
        joined.reserveCapacity(16)
        _ = try buffer.withUnsafeReadableBytes { area in
            try TLV.walk(area, area: "options") { code, value in
                if code == 52 {
                    guard value.count == 1, (1...3).contains(value[0]), overloadValue == nil || overloadValue == value[0] else {
                        throw DHCPError.badOverload(value: Array(value))
                    }
                    overloadValue = value[0]
                } else {
                    joined.append(joining: DHCPOption(code: code, value: Array(value)))
                }
            }
        }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        if let overloadValue {
            for (bit, name, field) in [(UInt8(1), "file", file), (UInt8(2), "sname", sname)]
            where overloadValue & bit != 0 {
                for entry in try TLV.parse(field[...], area: name).entries {
                    if entry.code == 52 { throw DHCPError.overloadLoop(area: name) }
                    joined.append(joining: entry)
                }
            }
            if overloadValue & 1 != 0 { file = ZeroFields.file }
            if overloadValue & 2 != 0 { sname = ZeroFields.sname }
        }
        overload = overloadValue
        options = joined
    }

    // MARK: Encoding

    /// The wire form: header, cookie, options (with overload into `file`/`sname` when
    /// `overload` is set), END, zero padding up to 300 bytes.
    public var bytes: [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 576)
        encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Room for options in the `options` field before the encoder spills into `file`/`sname`
    /// (RFC 2131 §2: the 312-byte field of a 576-byte message).
    public static let optionsFieldCapacity = 312 - 4

    /// The bytes `encode` writes, without writing them. Exact when the options are not
    /// overloaded; with overload (rare, only for replies that need it) it encodes.
    public var encodedLength: Int {
        if let overload, (1...3).contains(overload) {
            var buffer = ByteBufferAllocator().buffer(capacity: 576)
            encode(into: &buffer)
            return buffer.readableBytes
        }
        var length = 240 + 1  // header, cookie, END
        for option in options.list where option.code != 52 { length += TLV.encodedLength(of: option.value) }
        return max(length, Self.minimumLength)
    }

    /// Fits the message into `limit` bytes (RFC 2131 §2, RFC 2132 §9.10: 576 less the IP and
    /// UDP headers, or what the client's option 57 allows): as it is, or with its options
    /// overloaded into `sname` and/or `file` where those are unused (RFC 2132 §9.3). False
    /// when it cannot fit; the message is then unchanged.
    public mutating func fit(within limit: Int) -> Bool {
        let original = overload  // a decoded message may carry one; a failed fit restores it
        overload = nil
        if encodedLength <= limit { return true }
        let fileFree = file.allSatisfy { $0 == 0 }, snameFree = sname.allSatisfy { $0 == 0 }
        for value: UInt8 in [2, 1, 3] {
            if value & 1 != 0 && !fileFree || value & 2 != 0 && !snameFree { continue }
            overload = value
            if encodedLength <= limit, optionsFitAreas { return true }
        }
        overload = original
        return false
    }

    /// With overload set: whether the options fit its areas in order (encode otherwise keeps
    /// them all in the options field, which then is not smaller).
    private var optionsFitAreas: Bool {
        guard let overload else { return true }
        var capacities = [Self.optionsFieldCapacity - 4]
        if overload & 1 != 0 { capacities.append(128 - 1) }
        if overload & 2 != 0 { capacities.append(64 - 1) }
        var used = Array(repeating: 0, count: capacities.count), current = 0
        for option in options.list where option.code != 52 {
            let size = TLV.encodedLength(of: option.value)
            while current < capacities.count - 1, used[current] + size > capacities[current] { current += 1 }
            used[current] += size
        }
        return used[capacities.count - 1] <= capacities[capacities.count - 1]
    }

    public func encode(into buffer: inout ByteBuffer) {
        // Lay the options out first: they may end up in `file`/`sname`.
        var mainArea: [UInt8] = []
        var fileArea: [UInt8]?
        var snameArea: [UInt8]?
        let content = options.contains(52) ? options.list.filter { $0.code != 52 } : options.list
        let overloaded = overload.map { (1...3).contains($0) } ?? false
        if let overload, overloaded {
            // Keep 3 bytes for option 52 and 1 for END in the options field.
            var areas: [(capacity: Int, bytes: [UInt8])] = [(Self.optionsFieldCapacity - 4, [])]
            if overload & 1 != 0 { areas.append((128 - 1, [])) }
            if overload & 2 != 0 { areas.append((64 - 1, [])) }
            var current = 0
            for option in content {
                var encoded: [UInt8] = []
                TLV.write(code: option.code, value: option.value, into: &encoded)
                while current < areas.count - 1,
                      areas[current].bytes.count + encoded.count > areas[current].capacity {
                    current += 1
                }
                areas[current].bytes += encoded  // the last area takes what is left
            }
            if let last = areas.last, last.bytes.count > last.capacity {
                // Does not fit in order: keep everything in the options field (still legal;
                // the overloaded fields then hold just END).
                areas = areas.enumerated().map { index, area in
                    (area.capacity, index == 0 ? areas.flatMap(\.bytes) : [])
                }
            }
            mainArea = [52, 1, overload] + areas[0].bytes
            var next = 1
            if overload & 1 != 0 { fileArea = areas[next].bytes + [255]; next += 1 }
            if overload & 2 != 0 { snameArea = areas[next].bytes + [255] }
            mainArea.append(255)
        }

        let start = buffer.writerIndex
        buffer.writeInteger(op.rawValue)
        buffer.writeInteger(htype)
        buffer.writeInteger(hlen)
        buffer.writeInteger(hops)
        buffer.writeInteger(xid)
        buffer.writeInteger(secs)
        buffer.writeInteger(flags)
        buffer.writeIPv4Address(ciaddr)
        buffer.writeIPv4Address(yiaddr)
        buffer.writeIPv4Address(siaddr)
        buffer.writeIPv4Address(giaddr)
        buffer.writeFixedField(chaddr, count: 16)
        buffer.writeFixedField(snameArea ?? sname, count: 64)
        buffer.writeFixedField(fileArea ?? file, count: 128)
        buffer.writeInteger(Self.magicCookie)
        if !overloaded {
            // The options go straight into the buffer, with no area in between.
            for option in content { TLV.write(code: option.code, value: option.value, into: &buffer) }
            buffer.writeInteger(DHCPOption.end)
        } else {
            buffer.writeBytes(mainArea)
        }
        let written = buffer.writerIndex - start
        if written < Self.minimumLength {
            buffer.writeRepeatingByte(0, count: Self.minimumLength - written)
        }
    }
}
