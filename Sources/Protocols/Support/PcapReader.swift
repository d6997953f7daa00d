/// Why a capture could not be read.
public enum PcapError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooShort(field: String)
    case badMagic(UInt32)
    case unsupportedLinkType(UInt32)
    case truncatedRecord(index: Int, field: String)
    case badBlock(offset: Int, reason: String)

    public var description: String {
        switch self {
        case let .tooShort(field): return "capture too short: \(field)"
        case let .badMagic(magic): return "not a pcap/pcapng file (magic 0x\(String(magic, radix: 16)))"
        case let .unsupportedLinkType(type): return "unsupported link type \(type)"
        case let .truncatedRecord(index, field): return "packet \(index): truncated \(field)"
        case let .badBlock(offset, reason): return "pcapng block at \(offset): \(reason)"
        }
    }
}

/// Reads classic pcap (either byte order, µs or ns timestamps) and pcapng (SHB, IDB, EPB,
/// SPB; either byte order) and pulls out the IPv4/UDP and IPv6/UDP datagrams. Link types: Ethernet
/// (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, raw IPv4. Packets of other kinds,
/// fragments and truncated frames are skipped; only a broken file structure throws.
public struct PcapReader: Sendable {
    public struct Datagram: Sendable, Equatable {
        /// 0-based index of the packet in the file (counting every packet, not just UDP).
        public var index: Int
        /// Seconds since the epoch, when the file says.
        public var timestamp: Double?
        public var source: IPv4Address
        public var sourcePort: UInt16
        public var destination: IPv4Address
        public var destinationPort: UInt16
        public var payload: [UInt8]
    }

    /// A UDP datagram over IPv6 (DHCPv6 on 546/547/4011).
    public struct Datagram6: Sendable, Equatable {
        public var index: Int
        public var timestamp: Double?
        public var source: IPv6Address
        public var sourcePort: UInt16
        public var destination: IPv6Address
        public var destinationPort: UInt16
        public var payload: [UInt8]
    }

    public enum LinkType: UInt32, Sendable {
        case ethernet = 1, raw = 101, linuxSLL = 113, ipv4 = 228, linuxSLL2 = 276
        case rawOpenBSD = 14, rawBSD = 12
    }

    public let datagrams: [Datagram]
    /// The IPv6/UDP datagrams, apart so that what `datagrams` holds stays what it was.
    public let datagrams6: [Datagram6]
    public let packetCount: Int

    public init(bytes: [UInt8]) throws {
        var reader = Cursor(bytes: bytes)
        guard let magicLE = reader.peekUInt32(littleEndian: true) else { throw PcapError.tooShort(field: "magic") }
        var out: [Extracted] = []
        var count = 0
        switch magicLE {
        case 0xA1B2_C3D4, 0xA1B2_3C4D, 0xD4C3_B2A1, 0x4D3C_B2A1:
            try Self.readClassic(&reader, magicLE: magicLE, into: &out, count: &count)
        case 0x0A0D_0D0A:
            try Self.readNG(&reader, into: &out, count: &count)
        default:
            throw PcapError.badMagic(magicLE)
        }
        datagrams = out.compactMap { if case let .v4(d) = $0 { return d } else { return nil } }
        datagrams6 = out.compactMap { if case let .v6(d) = $0 { return d } else { return nil } }
        packetCount = count
    }

    // MARK: classic pcap

    static func readClassic(_ r: inout Cursor, magicLE: UInt32, into out: inout [Extracted], count: inout Int) throws {
        let little = magicLE == 0xA1B2_C3D4 || magicLE == 0xA1B2_3C4D
        let nanos = magicLE == 0xA1B2_3C4D || magicLE == 0x4D3C_B2A1
        guard r.remaining >= 24 else { throw PcapError.tooShort(field: "global header") }
        r.skip(20)
        let link = r.readUInt32(littleEndian: little)!
        guard let linkType = LinkType(rawValue: link & 0x0FFF_FFFF) else { throw PcapError.unsupportedLinkType(link) }
        var index = 0
        while r.remaining > 0 {
            guard r.remaining >= 16 else { throw PcapError.truncatedRecord(index: index, field: "record header") }
            let seconds = r.readUInt32(littleEndian: little)!
            let fraction = r.readUInt32(littleEndian: little)!
            let captured = Int(r.readUInt32(littleEndian: little)!)
            _ = r.readUInt32(littleEndian: little)
            guard let frame = r.read(captured) else { throw PcapError.truncatedRecord(index: index, field: "packet data") }
            let time = Double(seconds) + Double(fraction) / (nanos ? 1e9 : 1e6)
            if let datagram = Self.extract(frame, link: linkType, index: index, time: time) { out.append(datagram) }
            index += 1
        }
        count = index
    }

    // MARK: pcapng

    static func readNG(_ r: inout Cursor, into out: inout [Extracted], count: inout Int) throws {
        var little = true
        var interfaces: [(link: LinkType?, resolution: Double)] = []
        var index = 0
        while r.remaining > 0 {
            let offset = r.offset
            guard r.remaining >= 12 else { throw PcapError.badBlock(offset: offset, reason: "truncated block header") }
            let typeLE = r.peekUInt32(littleEndian: true)!
            if typeLE == 0x0A0D_0D0A {
                // Section header: the byte-order magic decides how to read the rest.
                guard let bom = r.peekUInt32(at: 8, littleEndian: true) else { throw PcapError.badBlock(offset: offset, reason: "no byte-order magic") }
                if bom == 0x1A2B_3C4D { little = true } else if bom == 0x4D3C_2B1A { little = false } else {
                    throw PcapError.badBlock(offset: offset, reason: "bad byte-order magic")
                }
                interfaces = []
            }
            let type = r.peekUInt32(littleEndian: little)!
            let length = Int(r.peekUInt32(at: 4, littleEndian: little)!)
            guard length >= 12, length % 4 == 0, let blockSlice = r.read(length) else {
                throw PcapError.badBlock(offset: offset, reason: "bad block length \(length)")
            }
            let block = blockSlice
            let body = Array(block[8..<(length - 4)])
            var b = Cursor(bytes: body)
            switch type {
            case 1:  // Interface description
                guard let link = b.readUInt16(littleEndian: little) else { throw PcapError.badBlock(offset: offset, reason: "short IDB") }
                b.skip(6)
                var resolution = 1e-6
                // Options: if_tsresol (9).
                while b.remaining >= 4 {
                    let code = b.readUInt16(littleEndian: little)!
                    let size = Int(b.readUInt16(littleEndian: little)!)
                    if code == 0 { break }
                    guard let value = b.read((size + 3) & ~3) else { break }
                    if code == 9, size >= 1 {
                        let v = value[0]
                        resolution = v & 0x80 != 0 ? pow2(-Int(v & 0x7F)) : pow10(-Int(v))
                    }
                }
                interfaces.append((LinkType(rawValue: UInt32(link)), resolution))
            case 6:  // Enhanced packet
                guard body.count >= 20 else { throw PcapError.badBlock(offset: offset, reason: "short EPB") }
                let interface = Int(b.readUInt32(littleEndian: little)!)
                let high = b.readUInt32(littleEndian: little)!
                let low = b.readUInt32(littleEndian: little)!
                let captured = Int(b.readUInt32(littleEndian: little)!)
                _ = b.readUInt32(littleEndian: little)
                guard let frame = b.read(captured) else { throw PcapError.truncatedRecord(index: index, field: "EPB data") }
                if interface < interfaces.count, let link = interfaces[interface].link {
                    let ticks = Double(UInt64(high) << 32 | UInt64(low))
                    if let d = extract(frame, link: link, index: index, time: ticks * interfaces[interface].resolution) { out.append(d) }
                }
                index += 1
            case 3:  // Simple packet: interface 0, no timestamp
                guard body.count >= 4 else { throw PcapError.badBlock(offset: offset, reason: "short SPB") }
                let original = Int(b.readUInt32(littleEndian: little)!)
                let frame = b.read(min(original, b.remaining)) ?? []
                if let link = interfaces.first?.link, let d = extract(frame, link: link, index: index, time: nil) { out.append(d) }
                index += 1
            default:
                break  // SHB, NRB, ISB, custom: nothing to extract
            }
        }
        count = index
    }

    static func pow10(_ e: Int) -> Double { var v = 1.0; for _ in 0..<abs(e) { v = e < 0 ? v / 10 : v * 10 }; return v }
    static func pow2(_ e: Int) -> Double { var v = 1.0; for _ in 0..<abs(e) { v = e < 0 ? v / 2 : v * 2 }; return v }

    // MARK: link, IPv4, UDP

    enum Extracted { case v4(Datagram), v6(Datagram6) }

    static func extract(_ frame: [UInt8], link: LinkType, index: Int, time: Double?) -> Extracted? {
        var f = Cursor(bytes: frame)
        var etherType: UInt16?
        switch link {
        case .ethernet:
            f.skip(12)
            etherType = f.readUInt16(littleEndian: false)
            while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
                f.skip(2)
                etherType = f.readUInt16(littleEndian: false)
            }
        case .linuxSLL:
            f.skip(14)
            etherType = f.readUInt16(littleEndian: false)
        case .linuxSLL2:
            etherType = f.readUInt16(littleEndian: false)
            f.skip(18)
        case .raw, .ipv4, .rawBSD, .rawOpenBSD:
            break
        }
        guard f.remaining > 0 else { return nil }
        let packet = Array(frame[f.offset...])
        switch etherType {
        case 0x0800?: return ipv4UDP(packet, index: index, time: time).map { .v4($0) }
        case 0x86DD?: return ipv6UDP(packet, index: index, time: time).map { .v6($0) }
        case nil where [.raw, .ipv4, .rawBSD, .rawOpenBSD].contains(link):
            // Raw IP: the version nibble says which (link type 228 is IPv4 only).
            if packet[0] >> 4 == 6, link != .ipv4 { return ipv6UDP(packet, index: index, time: time).map { .v6($0) } }
            return ipv4UDP(packet, index: index, time: time).map { .v4($0) }
        default: return nil
        }
    }

    /// UDP in IPv6: the fixed header, then hop-by-hop, routing and destination options
    /// headers skipped; fragments (and anything else) are not read.
    static func ipv6UDP(_ packet: [UInt8], index: Int, time: Double?) -> Datagram6? {
        guard packet.count >= 48, packet[0] >> 4 == 6 else { return nil }
        let payloadLength = Int(packet[4]) << 8 | Int(packet[5])
        let end = min(packet.count, 40 + payloadLength)
        var next = packet[6]
        var at = 40
        var hops = 0
        while next == 0 || next == 43 || next == 60 {
            guard hops < 8, at + 8 <= end else { return nil }
            next = packet[at]
            at += (Int(packet[at + 1]) + 1) * 8
            hops += 1
        }
        guard next == 17, at + 8 <= end else { return nil }
        let udpLength = Int(packet[at + 4]) << 8 | Int(packet[at + 5])
        let payloadEnd = udpLength >= 8 ? min(end, at + udpLength) : end
        return Datagram6(
            index: index, timestamp: time,
            source: IPv6Address(bytes: packet[8..<24])!, sourcePort: UInt16(packet[at]) << 8 | UInt16(packet[at + 1]),
            destination: IPv6Address(bytes: packet[24..<40])!, destinationPort: UInt16(packet[at + 2]) << 8 | UInt16(packet[at + 3]),
            payload: Array(packet[(at + 8)..<payloadEnd]))
    }

    static func ipv4UDP(_ packet: [UInt8], index: Int, time: Double?) -> Datagram? {
        guard packet.count >= 20, packet[0] >> 4 == 4 else { return nil }
        let headerLength = Int(packet[0] & 0x0F) * 4
        let totalLength = Int(packet[2]) << 8 | Int(packet[3])
        let fragment = (Int(packet[6]) << 8 | Int(packet[7]))
        guard headerLength >= 20, packet[9] == 17, fragment & 0x3FFF == 0 else { return nil }
        let end = min(packet.count, totalLength >= headerLength ? totalLength : packet.count)
        guard end >= headerLength + 8 else { return nil }
        let udp = packet[headerLength..<end]
        let u = udp.startIndex
        let udpLength = Int(udp[u + 4]) << 8 | Int(udp[u + 5])
        let payloadEnd = udpLength >= 8 ? min(udp.endIndex, u + udpLength) : udp.endIndex
        return Datagram(
            index: index, timestamp: time,
            source: IPv4Address(bytes: packet[12..<16])!, sourcePort: UInt16(udp[u]) << 8 | UInt16(udp[u + 1]),
            destination: IPv4Address(bytes: packet[16..<20])!, destinationPort: UInt16(udp[u + 2]) << 8 | UInt16(udp[u + 3]),
            payload: Array(udp[(u + 8)..<payloadEnd]))
    }

    /// A bounds-checked reader over a byte array; every read returns nil when short.
    struct Cursor {
        let bytes: [UInt8]
        var offset = 0
        init(bytes: [UInt8]) { self.bytes = bytes }
        var remaining: Int { max(0, bytes.count - offset) }
        mutating func skip(_ n: Int) { offset = min(bytes.count, offset + max(0, n)) }
        /// Zero-based copy of the next `n` bytes.
        mutating func read(_ n: Int) -> [UInt8]? {
            guard n >= 0, remaining >= n else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }
        func peekUInt32(at delta: Int = 0, littleEndian: Bool) -> UInt32? {
            let start = offset + delta
            guard start >= 0, start + 4 <= bytes.count else { return nil }
            let b = bytes[start..<(start + 4)].map(UInt32.init)
            return littleEndian ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]
        }
        mutating func readUInt32(littleEndian: Bool) -> UInt32? {
            guard let v = peekUInt32(littleEndian: littleEndian) else { return nil }
            offset += 4
            return v
        }
        mutating func readUInt16(littleEndian: Bool) -> UInt16? {
            guard remaining >= 2 else { return nil }
            let a = UInt16(bytes[offset]), b = UInt16(bytes[offset + 1])
            offset += 2
            return littleEndian ? a | b << 8 : a << 8 | b
        }
    }
}
