import Testing
@testable import Protocols

@Suite struct SmokeTests {
    @Test func noDeciderPasses() {
        #expect(NoDecider().decide(BootRequest(kind: .dhcp)) == nil)
    }
}
