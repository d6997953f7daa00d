import NIOCore
import Testing
@testable import Protocols

@Suite struct TFTPPacketTests {
    func bytes(_ packet: TFTPPacket) -> [UInt8] {
        var buffer = ByteBuffer()
        packet.encode(into: &buffer)
        return Array(buffer.readableBytesView)
    }

    func decode(_ bytes: [UInt8]) throws(TFTPError) -> TFTPPacket {
        try TFTPPacket(decoding: ByteBuffer(bytes: bytes))
    }

    @Test func readRequestWireForm() throws {
        let wire: [UInt8] = [0, 1] + Array("pxelinux.0".utf8) + [0] + Array("OCTET".utf8) + [0]
            + Array("blksize".utf8) + [0] + Array("1468".utf8) + [0] + Array("TSize".utf8) + [0] + [0x30, 0]
        let packet = try decode(wire)
        #expect(packet == .readRequest(TFTPRequest(filename: "pxelinux.0", mode: .octet, options: [
            TFTPOption(name: "blksize", value: "1468"), TFTPOption(name: "tsize", value: "0"),
        ])))
    }

    @Test(arguments: [
        TFTPPacket.readRequest(TFTPRequest(filename: "a/b.efi", mode: .netascii, options: [TFTPOption(name: "windowsize", value: "8")])),
        .writeRequest(TFTPRequest(filename: "up", mode: .octet)),
        .data(block: 65535, payload: ByteBuffer(bytes: [1, 2, 3])),
        .data(block: 0, payload: ByteBuffer()),
        .ack(block: 7),
        .error(code: .fileNotFound, message: "File not found"),
        .error(code: TFTPErrorCode(rawValue: 99), message: ""),
        .optionAck([TFTPOption(name: "blksize", value: "1468"), TFTPOption(name: "tsize", value: "123")]),
        .optionAck([]),
    ])
    func roundTrip(_ packet: TFTPPacket) throws {
        let wire = bytes(packet)
        #expect(try decode(wire) == packet)
        #expect(bytes(try decode(wire)) == wire)
    }

    @Test func dataHeaderHelperMatchesEncoder() {
        var buffer = ByteBuffer()
        TFTPPacket.writeDataHeader(block: 0x1234, into: &buffer)
        #expect(Array(buffer.readableBytesView) == [0, 3, 0x12, 0x34])
    }

    @Test(arguments: [
        ([UInt8](), TFTPError.truncated(field: "opcode")),
        ([0], .truncated(field: "opcode")),
        ([0, 9], .unknownOpcode(9)),
        ([0, 0], .unknownOpcode(0)),
        ([0xff, 0xff, 1, 2], .unknownOpcode(65535)),
        ([0, 1, 0x61, 0x62], .unterminated(field: "filename")),
        ([0, 1, 0, 0x6f, 0], .empty(field: "filename")),
        ([0, 1, 0x61, 0, 0x6f, 0x63], .unterminated(field: "mode")),
        ([0, 1, 0x61, 0, 0x78, 0], .unsupportedMode("x")),
        ([0, 2, 0x61, 0] + Array("binary".utf8) + [0], .unsupportedMode("binary")),
        ([0, 1, 0x61, 0] + Array("octet".utf8) + [0] + Array("blksize".utf8) + [0], .unpairedOption(name: "blksize")),
        ([0, 1, 0x61, 0] + Array("octet".utf8) + [0] + Array("blksize".utf8) + [0, 0x31], .unterminated(field: "option value")),
        ([0, 1, 0x61, 0] + Array("octet".utf8) + [0] + Array("blk".utf8), .unterminated(field: "option name")),
        ([0, 1, 0x61, 0] + Array("octet".utf8) + [0, 0, 0x31, 0], .empty(field: "option name")),
        ([0, 3, 0], .truncated(field: "block")),
        ([0, 4], .truncated(field: "block")),
        ([0, 4, 0, 1, 0], .trailingBytes(field: "block")),
        ([0, 5, 0], .truncated(field: "error code")),
        ([0, 6, 0x61], .unterminated(field: "option name")),
    ] as [([UInt8], TFTPError)])
    func malformed(_ wire: [UInt8], _ expected: TFTPError) {
        #expect(throws: expected) { try decode(wire) }
    }

    @Test func errorWithoutTerminatorKeepsMessage() throws {
        #expect(try decode([0, 5, 0, 1] + Array("gone".utf8)) == .error(code: .fileNotFound, message: "gone"))
    }

    @Test func everyErrorNamesAReason() {
        let errors: [TFTPError] = [.truncated(field: "x"), .unterminated(field: "x"), .unknownOpcode(1), .unsupportedMode("m"),
                                   .unpairedOption(name: "n"), .empty(field: "x"), .trailingBytes(field: "x")]
        #expect(Set(errors.map(\.reason)).count == errors.count)
        #expect(errors.allSatisfy { !$0.description.isEmpty })
    }

    @Test func randomBytesNeverTrap() {
        var state: UInt64 = 0x9e3779b97f4a7c15
        for _ in 0..<20_000 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let length = Int(state % 40)
            var bytes: [UInt8] = []
            var s = state
            for _ in 0..<length { s = s &* 6364136223846793005 &+ 1; bytes.append(UInt8(truncatingIfNeeded: s >> 56) % 8) }
            _ = try? decode(bytes)
        }
    }
}

@Suite struct TFTPTransferOptionsTests {
    func negotiate(_ pairs: [(String, String)], maxBlockSize: Int = 65464, size: UInt64? = 1000) throws -> TFTPTransferOptions {
        try TFTPTransferOptions.negotiate(pairs.map { TFTPOption(name: $0.0, value: $0.1) }, maxBlockSize: maxBlockSize,
                                          maxWindowSize: 64, transferSize: { size })
    }

    @Test func noOptionsIsPlainRFC1350() throws {
        let options = try negotiate([])
        #expect(options == TFTPTransferOptions())
        #expect(options.acknowledged.isEmpty)
    }

    @Test func acknowledgesKnownOptionsInOrderAndIgnoresUnknown() throws {
        let options = try negotiate([("tsize", "0"), ("foo", "bar"), ("blksize", "1468"), ("timeout", "3"), ("windowsize", "8"), ("blksize", "9")])
        #expect(options.blockSize == 1468)
        #expect(options.timeoutSeconds == 3)
        #expect(options.windowSize == 8)
        #expect(options.acknowledged.map(\.name) == ["tsize", "blksize", "timeout", "windowsize"])
        #expect(options.acknowledged[0].value == "1000")
    }

    @Test func clampsLargeValues() throws {
        #expect(try negotiate([("blksize", "100000")]).blockSize == 65464)
        #expect(try negotiate([("blksize", "9000")], maxBlockSize: 1468).acknowledged == [TFTPOption(name: "blksize", value: "1468")])
        #expect(try negotiate([("windowsize", "65535")]).windowSize == 64)
        // A window never holds more than 1 MiB.
        #expect(try negotiate([("blksize", "65464"), ("windowsize", "64")]).windowSize == 16)
    }

    @Test func tsizeOmittedWhenUnknown() throws {
        #expect(try negotiate([("tsize", "0")], size: nil).acknowledged.isEmpty)
        #expect(try negotiate([("tsize", "0")], size: 0).acknowledged.isEmpty)
    }

    @Test(arguments: [("blksize", "7"), ("blksize", "abc"), ("blksize", ""), ("blksize", "-1"), ("blksize", "99999999999"),
                      ("timeout", "0"), ("timeout", "256"), ("timeout", "x"), ("windowsize", "0"), ("tsize", "many")])
    func refusesNonsense(_ name: String, _ value: String) {
        #expect(throws: TFTPTransferOptions.Refusal(option: name, value: value)) { try negotiate([(name, value)]) }
    }
}
