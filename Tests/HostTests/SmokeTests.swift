import Testing

@Suite struct HostSmokeTests {
    @Test func placeholder() { #expect(1 + 1 == 2) }
}
