import Testing
@testable import LuaBridge

@Suite struct LuaSmokeTests {
    @Test func linksLua54() { #expect(LuaInfo.versionNumber == 504) }
}
