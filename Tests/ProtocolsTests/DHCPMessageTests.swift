import NIOCore
import Testing
@testable import Protocols

@Suite struct DHCPMessageTests {
    let valid = Build.discover().bytes

    // MARK: each malformed class

    @Test func emptyPacketIsTruncatedAtOp() {
        #expect(throws: DHCPError.truncated(field: "op", needed: 1, available: 0)) { try DHCPMessage(bytes: []) }
    }

    @Test func truncatedHeaderNamesTheField() {
        #expect(throws: DHCPError.truncated(field: "xid", needed: 4, available: 2)) { try DHCPMessage(bytes: Array(valid.prefix(6))) }
        #expect(throws: DHCPError.truncated(field: "file", needed: 128, available: 10)) { try DHCPMessage(bytes: Array(valid.prefix(108 + 10))) }
        #expect(throws: DHCPError.truncated(field: "magic cookie", needed: 4, available: 0)) { try DHCPMessage(bytes: Array(valid.prefix(236))) }
    }

    @Test func badOp() {
        var bytes = valid
        bytes[0] = 3
        #expect(throws: DHCPError.badOp(3)) { try DHCPMessage(bytes: bytes) }
    }

    @Test func badHlen() {
        var bytes = valid
        bytes[2] = 17
        #expect(throws: DHCPError.badHlen(17)) { try DHCPMessage(bytes: bytes) }
    }

    @Test func wrongMagicCookie() {
        var bytes = valid
        bytes[236] = 0
        #expect(throws: DHCPError.badMagicCookie(0x0082_5363)) { try DHCPMessage(bytes: bytes) }
    }

    @Test func optionRunningPastEnd() {
        let bytes = Array(valid.prefix(240)) + [53, 1, 1, 60, 10, 0x50, 0x58]
        #expect(throws: DHCPError.optionOverrun(code: 60, area: "options")) { try DHCPMessage(bytes: bytes) }
        // A code byte with no length byte.
        #expect(throws: DHCPError.optionOverrun(code: 12, area: "options")) { try DHCPMessage(bytes: Array(valid.prefix(240)) + [12]) }
    }

    @Test func badOverloadValue() {
        let header = Array(valid.prefix(240))
        #expect(throws: DHCPError.badOverload(value: [4])) { try DHCPMessage(bytes: header + [52, 1, 4, 255]) }
        #expect(throws: DHCPError.badOverload(value: [1, 2])) { try DHCPMessage(bytes: header + [52, 2, 1, 2, 255]) }
    }

    @Test func overloadLoop() {
        var bytes = Array(valid.prefix(240)) + [52, 1, 1, 255]
        // `file` (offset 108) itself carries option 52 again.
        bytes.replaceSubrange(108..<112, with: [52, 1, 1, 255])
        #expect(throws: DHCPError.overloadLoop(area: "file")) { try DHCPMessage(bytes: bytes) }
    }

    @Test func optionRunningPastEndOfOverloadedField() {
        var bytes = Array(valid.prefix(240)) + [52, 1, 2, 255]
        bytes[44 + 62] = 12
        bytes[44 + 63] = 5  // sname's last option claims 5 bytes
        #expect(throws: DHCPError.optionOverrun(code: 12, area: "sname")) { try DHCPMessage(bytes: bytes) }
    }

    @Test func missingEndAndPaddingAreAccepted() throws {
        let bytes = Array(valid.prefix(240)) + [0, 0, 53, 1, 1, 0]
        let message = try DHCPMessage(bytes: bytes)
        #expect(message.messageType == .discover)
        #expect(message.options.count == 1)
    }

    // MARK: fields

    @Test func headerFieldsAndViews() throws {
        var message = DHCPMessage(op: .reply, xid: 0xDEAD_BEEF, secs: 4, chaddr: Build.mac, sname: "boot", file: "undionly.kpxe")
        message.broadcast = true
        message.siaddr = IPv4Address(192, 168, 77, 1)
        let decoded = try DHCPMessage(bytes: message.bytes)
        #expect(decoded == message)
        #expect(decoded.flags == 0x8000 && decoded.broadcast)
        #expect(decoded.clientMAC == "52:54:00:12:34:56")
        #expect(decoded.serverName == "boot")
        #expect(decoded.bootFile == "undionly.kpxe")
        #expect(decoded.chaddr.count == 16 && decoded.sname.count == 64 && decoded.file.count == 128)
        #expect(message.bytes.count == DHCPMessage.minimumLength)
    }

    @Test func clientMACUsesHlen() throws {
        var message = DHCPMessage(op: .request, hlen: 3, xid: 1, chaddr: Build.mac)
        #expect(message.clientMAC == "52:54:00")
        message.hlen = 0
        #expect(message.clientMAC == "")
    }

    // MARK: RFC 3396

    @Test func longOptionIsSplitAndJoined() throws {
        var message = DHCPMessage(op: .request, xid: 7)
        let long = (0..<600).map { UInt8($0 % 251) }
        message.options.set(43, long)
        message.options.set(53, [1])
        let bytes = message.bytes
        // 600 bytes = 255 + 255 + 90: three instances of 43 on the wire.
        var count = 0
        var i = 240
        while i < bytes.count, bytes[i] != 255 {
            if bytes[i] == 43 { count += 1 }
            i += 2 + Int(bytes[i + 1])
        }
        #expect(count == 3)
        let decoded = try DHCPMessage(bytes: bytes)
        #expect(decoded.options[code: 43] == long)
        #expect(decoded.options.map(\.code) == [43, 53])
    }

    @Test func repeatedInstancesJoinInOrderAtFirstPosition() throws {
        let bytes = Array(valid.prefix(240)) + [12, 2, 0x61, 0x62, 53, 1, 1, 12, 1, 0x63, 255]
        let message = try DHCPMessage(bytes: bytes)
        #expect(message.hostname == "abc")
        #expect(message.options.map(\.code) == [12, 53])
    }

    @Test func emptyValueEncodesAsZeroLength() throws {
        var message = DHCPMessage(op: .request, xid: 1)
        message.options.set(80, [])
        #expect(try DHCPMessage(bytes: message.bytes).options[code: 80] == [])
    }

    // MARK: overload (RFC 2131 §4.1)

    @Test func decodesOptionsFromFileAndSname() throws {
        var bytes = Array(valid.prefix(240)) + [52, 1, 3, 53, 1, 1, 255]
        bytes.replaceSubrange(108..<115, with: [12, 3, 0x61, 0x62, 0x63, 255, 0])  // file: hostname
        bytes.replaceSubrange(44..<49, with: [66, 2, 0x68, 0x69, 255])  // sname: tftp server
        let message = try DHCPMessage(bytes: bytes)
        #expect(message.overload == 3)
        #expect(message.hostname == "abc")
        #expect(message.tftpServerName == "hi")
        #expect(message.bootFile == "" && message.serverName == "")
        #expect(message.options.map(\.code) == [53, 12, 66])
        #expect(!message.options.contains(52))
        // Stable through encode/decode.
        #expect(try DHCPMessage(bytes: message.bytes) == message)
    }

    @Test func encoderSpillsIntoFileThenSname() throws {
        var message = DHCPMessage(op: .reply, xid: 9)
        message.overload = 3
        for code: UInt8 in 100...110 { message.options.set(code, [UInt8](repeating: code, count: 40)) }
        let bytes = message.bytes
        #expect(bytes[240...242] == [52, 1, 3])
        #expect(bytes[108] != 0)  // file holds options
        let decoded = try DHCPMessage(bytes: bytes)
        #expect(decoded == message)
    }

    @Test func encoderKeepsOrderWhenOverloadCannotHoldEverything() throws {
        var message = DHCPMessage(op: .reply, xid: 9)
        message.overload = 2
        for code: UInt8 in 100...120 { message.options.set(code, [UInt8](repeating: code, count: 60)) }
        let decoded = try DHCPMessage(bytes: message.bytes)
        #expect(decoded == message)
    }


    /// Found by the DHCP fuzz target: a message that arrived overloaded and cannot fit lost its
    /// `overload` in the failed fit, though `fit(within:)` promises to leave it unchanged.
    @Test func aFailedFitLeavesTheMessageAsItWas() throws {
        var message = DHCPMessage(op: .reply, xid: 9)
        message.overload = 3
        for code: UInt8 in 100...120 { message.options.set(code, [UInt8](repeating: code, count: 60)) }
        let before = message
        let fitted = message.fit(within: 576)
        #expect(!fitted)
        #expect(message == before)
        #expect(message.overload == 3)
    }
    // MARK: round trips and no-trap

    @Test func byteBufferAndArrayFormsAgree() throws {
        let message = Build.discover()
        var buffer = ByteBuffer()
        message.encode(into: &buffer)
        #expect(Array(buffer.readableBytesView) == message.bytes)
        #expect(try DHCPMessage(from: &buffer) == message)
        #expect(buffer.readableBytes == 0)
    }

    @Test func everyCapturedMessageIsStable() throws {
        var checked = 0
        for payload in try Captures.allPayloads() {
            guard let first = try? DHCPMessage(bytes: payload) else { continue }
            let second = try DHCPMessage(bytes: first.bytes)
            #expect(second == first)
            #expect(second.bytes == first.bytes)
            checked += 1
        }
        #expect(checked > 30)
    }

    /// 20,000 mutated or truncated packets from the captures: each decodes or throws a
    /// DHCPError; whatever decodes also re-encodes stably. Nothing traps.
    @Test func mutatedPacketsNeverTrap() throws {
        let seeds = try Captures.allPayloads()
        try #require(!seeds.isEmpty)
        var rng = SystemRandomNumberGenerator()
        var decoded = 0, rejected = 0
        for n in 0..<20_000 {
            var bytes = seeds[n % seeds.count]
            switch n % 4 {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            case 1:
                for _ in 0..<Int.random(in: 1...6, using: &rng) where !bytes.isEmpty {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                // Mutate inside the options area, where lengths live.
                if bytes.count > 241 {
                    for _ in 0..<3 { bytes[Int.random(in: 240..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                }
            default:
                bytes += (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if bytes.count > 241 { bytes[240] = [52, 43, 82, 175, 93, 77][Int.random(in: 0..<6, using: &rng)] }
            }
            do {
                let message = try DHCPMessage(bytes: bytes)
                decoded += 1
                let again = try DHCPMessage(bytes: message.bytes)
                #expect(again == message)
                _ = message.summary
                _ = BootRequest(dhcp: message, serverPort: 67, interface: nil, source: nil)
            } catch is DHCPError {
                rejected += 1
            }
        }
        #expect(decoded + rejected == 20_000)
        #expect(decoded > 1000 && rejected > 1000)
    }
}
