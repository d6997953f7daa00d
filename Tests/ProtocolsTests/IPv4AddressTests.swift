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

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "1..2.3", "-1.2.3.4", "1.2.3.4 "])
    func rejectsBadText(_ text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test func rejectsWrongByteCount() {
        #expect(IPv4Address(bytes: [1, 2, 3]) == nil)
        #expect(IPv4Address(bytes: [1, 2, 3, 4, 5]) == nil)
    }
}
