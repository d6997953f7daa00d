import Foundation
import Protocols
import Testing
@testable import Host

@Suite struct ClientTimelineTests {
    static func mac(_ i: Int) -> String {
        String(format: "52:54:00:%02x:%02x:%02x", (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)
    }

    static func event(_ i: Int, at t: Double, stage: BootEvent.Stage = .dhcp) -> BootEvent {
        BootEvent(time: Date(timeIntervalSince1970: t), stage: stage, mac: mac(i), clientAddress: "10.0.\(i / 256).\(i % 256)",
                  summary: "event \(i)", fields: ["arch": "bios", "file": "f\(i)"])
    }

    @Test func floodOfNewMACsStaysBoundedAndKeepsTheMostRecent() {
        let timeline = ClientTimeline(maxClients: 64, maxEvents: 4)
        for i in 0..<1000 {
            timeline.record(Self.event(i, at: Double(i)))
            #expect(timeline.snapshot().count <= 64)
        }
        let kept = Set(timeline.snapshot().map(\.mac))
        // The 56 most recent (maxClients minus the evicted eighth) are always there.
        for i in 944..<1000 { #expect(kept.contains(Self.mac(i))) }
        #expect(!kept.contains(Self.mac(0)))
        // Evicted clients take their address mapping with them; kept ones keep it.
        #expect(timeline.mac(forAddress: "10.0.0.0") == nil)
        #expect(timeline.mac(forAddress: "10.0.3.231") == Self.mac(999))
    }

    @Test func aClientSeenAgainIsNotEvicted() {
        let timeline = ClientTimeline(maxClients: 8, maxEvents: 4)
        timeline.record(Self.event(0, at: 0))
        for i in 1..<100 {
            timeline.record(Self.event(i, at: Double(i)))
            timeline.record(Self.event(0, at: Double(i) + 0.5, stage: .tftp))  // client 0 keeps booting
        }
        let zero = timeline.snapshot().first { $0.mac == Self.mac(0) }
        #expect(zero != nil)
        #expect(zero?.events.count == 4)  // bounded per client
        #expect(zero?.events.last?.stage == "tftp")
        #expect(zero?.firstSeen == Date(timeIntervalSince1970: 0))
        #expect(zero?.lastFile == "f0")
    }
}
