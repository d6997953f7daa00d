import Testing
@testable import Protocols

@Suite struct IPv4AddressTests {
    @Test func parsesAndPrintsDottedQuad() throws {
        let address = try #require(IPv4Address("192.168.77.1"))
        #expect(address.rawValue == 0xC0A8_4D01)
        #expect(address.description == "192.168.77.1")
        #expect(address.bytes == [192, 168, 77, 1])
        #expect(IPv4Address(bytes: [10, 0, 0, 1]) == IPv4Address(10, 0, 0, 1))
        #expect(IPv4Address.broadcast.description == "255.255.255.255")
    }

    @Test func printsAndParsesEveryOctetWidth() {
        for octet in [0, 1, 9, 10, 99, 100, 199, 255] {
            let value = UInt8(octet)
            let address = IPv4Address(value, 255 - value, value, 7)
            let text = "\(octet).\(255 - octet).\(octet).7"
            #expect(address.description == text)
            #expect(IPv4Address(text) == address)
        }
        #expect(IPv4Address("0.0.0.0") == .any)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "1..2.3", "-1.2.3.4", "1.2.3.4 ",
                      "1.2.3.", ".1.2.3", "1.2.3.0400", "00.1.2.3", "1.2.3.1000", "1.2.3.4\u{0}", "１.2.3.4"])
    func rejectsBadText(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test func rejectsWrongByteCount() {
        #expect(IPv4Address(bytes: [1, 2, 3]) == nil)
        #expect(IPv4Address(bytes: [1, 2, 3, 4, 5]) == nil)
    }
}
