import Foundation
import Testing
@testable import Protocols

/// The request line as policies and the file server see it: the percent decoding is the
/// project's own (Foundation's was a twentieth of a small request's CPU), so it is held to
/// Foundation's answers, on chosen and on random input. One difference, on purpose: where the
/// escapes decode to bytes that are not UTF-8, Foundation sometimes gives nil and sometimes
/// replaces them with U+FFFD (it depends on the rest of the string); ours always keeps the
/// text as it came, escapes and all.
@Suite struct HTTPRequestContextTests {
    static let chosen = [
        "", "/", "/plain/path.txt", "/a%20b", "/%41%42%43", "/%e2%82%ac", "/%E2%82%AC", "/caf%C3%A9",
        "/bad%", "/bad%2", "/bad%zz", "/%%41", "/%ff%fe", "/%c3", "/hello.txt%00.png", "/%2e%2e/%2e%2e/etc/passwd",
        "/mixed%41b%", "/€/%20", "%", "%%", "/%0a%0d", "/a+b",
    ]

    /// Foundation's answer, with a replacement character it made up read as its nil.
    static func foundation(_ text: String) -> String {
        guard let decoded = text.removingPercentEncoding else { return text }
        return decoded.contains("\u{FFFD}") && !text.contains("\u{FFFD}") ? text : decoded
    }

    @Test(arguments: chosen)
    func decodesAsFoundationDoes(_ text: String) {
        #expect(text.removingPercentEncodingOrSelf == Self.foundation(text))
    }

    @Test func bytesThatAreNotUTF8StayAsTheyCame() {
        #expect(".éé%a9e.e".removingPercentEncodingOrSelf == ".éé%a9e.e")
        #expect("/%ff%fe".removingPercentEncodingOrSelf == "/%ff%fe")
        #expect("/%c3".removingPercentEncodingOrSelf == "/%c3")
    }

    @Test func decodesRandomInputAsFoundationDoes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("%%%0123456789abcdefABCDEFgz/+. é€".unicodeScalars)
        for _ in 0..<20_000 {
            let text = String(String.UnicodeScalarView((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            let ours = text.removingPercentEncodingOrSelf, theirs = Self.foundation(text)
            if ours != theirs { Issue.record("\(text.debugDescription): ours \(ours.debugDescription), Foundation \(theirs.debugDescription)"); return }
        }
    }

    @Test func pathAndQueryAreDecoded() {
        let c = HTTPRequestContext(method: .GET, uri: "/boot%2Eipxe?mac=52%3A54%3A00%3A00%3A00%3A01&name=web+1&flag&=x&bad=%zz",
                                   clientAddress: "10.0.0.1")
        #expect(c.path == "/boot.ipxe")
        #expect(c.query == ["mac": "52:54:00:00:00:01", "name": "web 1", "flag": "", "bad": "%zz"])
    }
}
