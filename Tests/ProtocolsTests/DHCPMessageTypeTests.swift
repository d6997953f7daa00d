import Testing
@testable import Protocols

@Suite struct DHCPMessageTypeTests {
    /// The spelled-out names stay what policies always saw: the case name in lower case.
    @Test(arguments: DHCPMessageType.allCases)
    func nameIsTheLowerCaseCaseName(_ type: DHCPMessageType) {
        #expect(type.name == String(describing: type).lowercased())
    }
}
