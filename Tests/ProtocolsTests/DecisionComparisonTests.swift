import Foundation
import Protocols
import Testing

/// What counts as a different answer: only what reaches the client.
@Suite struct DecisionComparisonTests {
    let uefi = BootDecision(filename: "ipxe.efi", nextServer: "10.0.0.1", note: "a", policy: "arch-aware")

    @Test func theSameAnswerFromAnotherPolicyIsNoDifference() {
        var other = uefi
        other.policy = "default"
        other.note = "another note"
        #expect(DecisionComparison.differences(kind: .dhcp, uefi, other).isEmpty)
        #expect(DecisionComparison.differences(kind: .dhcp, nil, BootDecision(ignore: true)).isEmpty, "silent either way")
    }

    @Test func silenceAgainstAnAnswerIsOneDifference() {
        let d = DecisionComparison.differences(kind: .dhcp, nil, uefi)
        #expect(d == [DecisionDifference(field: "silence", from: "silent (no policy decided)", to: "answers")])
    }

    @Test func eachFieldIsNamed() {
        var b = uefi
        b.filename = "snp.efi"
        b.options = [43: [1, 2]]
        b.ipxeScript = "#!ipxe\nchain http://x/\n"
        let fields = DecisionComparison.differences(kind: .dhcp, uefi, b).map(\.field)
        #expect(fields == ["filename", "script", "options"])
        let script = DecisionComparison.differences(kind: .dhcp, uefi, b).first { $0.field == "script" }
        #expect(script?.from == "(none)")
        #expect(script?.to.contains("chain http://x/") == true, "\(script?.to ?? "")")
    }

    @Test func fileRequestsCompareWhatIsServed() {
        let generated = BootDecision(content: Array("#!ipxe\n".utf8), contentType: "text/plain")
        #expect(DecisionComparison.differences(kind: .tftp, nil, nil).isEmpty)
        #expect(DecisionComparison.differences(kind: .tftp, nil, generated).map(\.field) == ["content"])
        #expect(DecisionComparison.differences(kind: .http, generated, BootDecision(refuse: "no")).map(\.field)
                == ["content", "content_type", "refuse"])
    }

    @Test func aDecisionRoundTripsThroughJSON() throws {
        let d = BootDecision(ignore: false, filename: "f", nextServer: "1.2.3.4", serverName: "s", ipxeScript: "#!ipxe",
                             options: [66: [1, 2, 255]], content: [0, 1, 2, 200], contentType: "t", path: "/p", refuse: "r",
                             status: 404, note: "n", policy: "p", address: "10.0.0.9")
        let back = try JSONDecoder().decode(BootDecision.self, from: JSONEncoder().encode(d))
        #expect(back == d)
        #expect(String(decoding: try JSONEncoder().encode(BootDecision()), as: UTF8.self) == "{}")
    }
}
