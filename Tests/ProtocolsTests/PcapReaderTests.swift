import Foundation
import Testing
@testable import Protocols

@Suite struct PcapReaderTests {
    /// A minimal IPv4/UDP packet around `payload`.
    static func ipv4UDP(_ payload: [UInt8], sport: UInt16 = 68, dport: UInt16 = 67) -> [UInt8] {
        let udpLength = 8 + payload.count
        let total = 20 + udpLength
        var p: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0, 0, 64, 17, 0, 0,
                          0, 0, 0, 0, 255, 255, 255, 255]
        p += [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF),
              UInt8(udpLength >> 8), UInt8(udpLength & 0xFF), 0, 0]
        return p + payload
    }

    static func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)] }
    static func be32(_ v: UInt32) -> [UInt8] { le32(v).reversed() }

    static func classic(_ frames: [[UInt8]], link: UInt32, bigEndian: Bool = false, nanos: Bool = false) -> [UInt8] {
        let w: (UInt32) -> [UInt8] = bigEndian ? be32 : le32
        var out = w(nanos ? 0xA1B2_3C4D : 0xA1B2_C3D4)
        out += bigEndian ? [0, 2, 0, 4] : [2, 0, 4, 0]
        out += w(0) + w(0) + w(65535) + w(link)
        for frame in frames {
            out += w(1_700_000_000) + w(500) + w(UInt32(frame.count)) + w(UInt32(frame.count)) + frame
        }
        return out
    }

    @Test func readsClassicBothByteOrdersAndResolutions() throws {
        let payload: [UInt8] = Array("hello".utf8)
        let ethernet = [UInt8](repeating: 0xFF, count: 6) + [UInt8](repeating: 0x11, count: 6) + [0x08, 0x00] + Self.ipv4UDP(payload)
        for big in [false, true] {
            for nanos in [false, true] {
                let reader = try PcapReader(bytes: Self.classic([ethernet], link: 1, bigEndian: big, nanos: nanos))
                #expect(reader.datagrams.count == 1)
                #expect(reader.datagrams.first?.payload == payload)
                #expect(reader.datagrams.first?.destinationPort == 67)
                let expected = 1_700_000_000 + 500 / (nanos ? 1e9 : 1e6)
                #expect(abs((reader.datagrams.first?.timestamp ?? 0) - expected) < 1e-9)
            }
        }
    }

    @Test func readsVLANTaggedSLLSLL2AndRaw() throws {
        let payload: [UInt8] = [1, 2, 3]
        let vlan = [UInt8](repeating: 0xFF, count: 12) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + Self.ipv4UDP(payload)
        let sll = [UInt8](repeating: 0, count: 14) + [0x08, 0x00] + Self.ipv4UDP(payload)
        let sll2 = [0x08, 0x00] + [UInt8](repeating: 0, count: 18) + Self.ipv4UDP(payload)
        for (frame, link) in [(vlan, UInt32(1)), (sll, 113), (sll2, 276), (Self.ipv4UDP(payload), 101), (Self.ipv4UDP(payload), 228)] {
            let reader = try PcapReader(bytes: Self.classic([frame], link: link))
            #expect(reader.datagrams.map(\.payload) == [payload], "link \(link)")
        }
    }

    @Test func readsPcapngBothByteOrders() throws {
        let payload: [UInt8] = [9, 9, 9, 9]
        let frame = Self.ipv4UDP(payload)
        for big in [false, true] {
            let w: (UInt32) -> [UInt8] = big ? Self.be32 : Self.le32
            let w16: (UInt16) -> [UInt8] = { big ? [UInt8($0 >> 8), UInt8($0 & 0xFF)] : [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
            func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
                let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
                let length = UInt32(12 + padded.count)
                return w(type) + w(length) + padded + w(length)
            }
            var file = block(0x0A0D_0D0A, w(0x1A2B_3C4D) + w16(1) + w16(0) + [UInt8](repeating: 0xFF, count: 8))
            file += block(1, w16(101) + w16(0) + w(0))
            file += block(6, w(0) + w(0) + w(1_000_000) + w(UInt32(frame.count)) + w(UInt32(frame.count)) + frame)
            file += block(3, w(UInt32(frame.count)) + frame)
            let reader = try PcapReader(bytes: file)
            #expect(reader.packetCount == 2)
            #expect(reader.datagrams.map(\.payload) == [payload, payload])
            #expect(reader.datagrams.first?.timestamp == 1.0)
        }
    }

    @Test func typedErrorsOnGarbage() {
        #expect(throws: PcapError.tooShort(field: "magic")) { try PcapReader(bytes: [1, 2]) }
        #expect(throws: PcapError.badMagic(0x0403_0201)) { try PcapReader(bytes: [1, 2, 3, 4, 5, 6]) }
        #expect(throws: PcapError.unsupportedLinkType(999)) { try PcapReader(bytes: Self.classic([], link: 999)) }
        var truncated = Self.classic([[1, 2, 3, 4]], link: 1)
        truncated.removeLast(2)
        #expect(throws: PcapError.truncatedRecord(index: 0, field: "packet data")) { try PcapReader(bytes: truncated) }
    }

    @Test func readsTheTcpdumpPcapng() throws {
        let url = Captures.bundled.appendingPathComponent("the-tcpdump-group_tcpdump__dhcp-option-108.pcapng")
        let datagrams = try Captures.dhcpDatagrams(url)
        #expect(!datagrams.isEmpty)
        for d in datagrams { #expect(throws: Never.self) { try DHCPMessage(bytes: d.payload) } }
    }

    @Test func neverTrapsOnMutatedCaptures() throws {
        var rng = SystemRandomNumberGenerator()
        for url in Captures.files(in: Captures.bundled) {
            let bytes = [UInt8](try Data(contentsOf: url))
            for _ in 0..<200 {
                var mutated = bytes
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    mutated[Int.random(in: 0..<mutated.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                if Bool.random(using: &rng) { mutated = Array(mutated.prefix(Int.random(in: 0...mutated.count, using: &rng))) }
                _ = try? PcapReader(bytes: mutated)
            }
        }
    }
}
