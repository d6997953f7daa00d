import Testing
@testable import Protocols

/// Script tokens are HMAC-SHA256 as documented: an outside tool (the HTTP benchmark, an
/// operator's script) computing one from the key must get the server's.
@Suite struct ScriptTokensTests {
    let tokens = ScriptTokens.forPolicyTests

    @Test func aTokenIsTheDocumentedHMAC() {
        // python3: hmac.new(key, b"bootpolicy script v1\0" + b"52:54:00:12:34:56", sha256).hexdigest()[:32]
        #expect(tokens.token(for: "52-54-00-12-34-56") == "fd59c4e7c3b0e4a9bda6fffafb4e7078")
        // The same again: the keyed HMAC is copied per token, never used up.
        #expect(tokens.token(for: "52:54:00:12:34:56") == "fd59c4e7c3b0e4a9bda6fffafb4e7078")
    }

    @Test func verifyTakesOnlyTheMachinesOwnToken() {
        #expect(tokens.verify("fd59c4e7c3b0e4a9bda6fffafb4e7078", mac: "52:54:00:12:34:56"))
        #expect(tokens.verify("FD59C4E7C3B0E4A9BDA6FFFAFB4E7078", mac: "5254.0012.3456"))
        #expect(!tokens.verify("fd59c4e7c3b0e4a9bda6fffafb4e7079", mac: "52:54:00:12:34:56"))
        #expect(!tokens.verify("fd59c4e7c3b0e4a9bda6fffafb4e7078", mac: "52:54:00:12:34:57"))
        #expect(!tokens.verify("fd59c4e7", mac: "52:54:00:12:34:56"))
        #expect(!tokens.verify("zz59c4e7c3b0e4a9bda6fffafb4e7078", mac: "52:54:00:12:34:56"))
        #expect(ScriptTokens.random().token(for: "52:54:00:12:34:56") != tokens.token(for: "52:54:00:12:34:56"))
    }
}
