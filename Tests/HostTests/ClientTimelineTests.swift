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

    /// A deferred event (what ProxyDHCP records per answer) is written only when the timeline is
    /// read, and the client row still gets its arch, firmware, policy and file at once.
    @Test func deferredEventsAreWrittenOnlyWhenRead() throws {
        final class Counter: @unchecked Sendable { var calls = 0 }
        let counter = Counter()
        let timeline = ClientTimeline(maxClients: 8, maxEvents: 4)
        timeline.record(BootEvent(stage: .dhcp, mac: Self.mac(1), clientAddress: "10.0.0.1", arch: "efi-x64", firmware: "uefi",
                                  policy: "default", file: "ipxe.efi") {
            counter.calls += 1
            return ("DISCOVER -> ipxe.efi", ["outcome": "answered"])
        })
        #expect(counter.calls == 0)
        let client = try #require(timeline.snapshot().first)
        #expect(client.arch == "efi-x64" && client.firmware == "uefi" && client.policy == "default" && client.lastFile == "ipxe.efi")
        #expect(client.events.map(\.summary) == ["DISCOVER -> ipxe.efi"])
        #expect(client.events.first?.fields == ["outcome": "answered"])
        #expect(counter.calls == 1, "written once, when read")
        let json = String(decoding: timeline.json(), as: UTF8.self)
        #expect(json.contains("DISCOVER -> ipxe.efi") && !json.contains("recorded"))
    }

    @Test func floodOfNewMACsStaysBoundedAndKeepsTheMostRecent() {
        let timeline = ClientTimeline(capacity: 256, maxClients: 64, maxEvents: 4)
        for i in 0..<1000 {
            timeline.record(Self.event(i, at: Double(i)))
            #expect(timeline.snapshot().count <= 64)
        }
        let kept = Set(timeline.snapshot().map(\.mac))
        // Exactly the 64 most recent.
        #expect(kept == Set((936..<1000).map(Self.mac)))
        #expect(!kept.contains(Self.mac(0)))
    }

    @Test func evictsInOrderOfLastSightingThroughManyRepeats() {
        let timeline = ClientTimeline(maxClients: 4, maxEvents: 2)
        var t = 0.0
        func see(_ i: Int) { t += 1; timeline.record(Self.event(i, at: t)) }
        for i in 0..<4 { see(i) }
        // Many more repeats than 4 x maxClients: the order list is compacted along the way.
        for round in 0..<50 { for i in [3, 1, 0, 2] where round % 2 == 0 || i != 2 { see(i) } }
        // Last sightings, oldest first: 2 (round 48), then 3, 1, 0 (round 49).
        see(10)
        #expect(Set(timeline.snapshot().map(\.mac)) == Set([3, 1, 0, 10].map(Self.mac)))
        see(11)
        #expect(Set(timeline.snapshot().map(\.mac)) == Set([1, 0, 10, 11].map(Self.mac)))
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

    /// The ring wraps many times: only its events count, oldest first.
    @Test func theRingKeepsTheLastEvents() throws {
        let timeline = ClientTimeline(capacity: 10, maxClients: 100, maxEvents: 100)
        func event(_ client: Int, _ t: Double, address: String?, file: String? = nil) -> BootEvent {
            BootEvent(time: Date(timeIntervalSince1970: t), stage: .tftp, mac: Self.mac(client), clientAddress: address,
                      summary: "e\(Int(t))", fields: file.map { ["file": $0] } ?? [:])
        }
        timeline.record(event(1, 0, address: "10.0.0.1", file: "old"))
        timeline.record(event(2, 1, address: "10.0.0.2"))
        for t in 2..<9 { timeline.record(event(3, Double(t), address: nil)) }
        timeline.record(event(1, 9, address: "10.0.0.1"))  // client 1 again, same address
        #expect(timeline.snapshot().map(\.mac) == [1, 3, 2].map(Self.mac))
        timeline.record(event(3, 10, address: "10.0.0.9"))  // pushes out event 0 (client 1's first)
        timeline.record(event(3, 11, address: "10.0.0.2"))  // pushes out event 1; 10.0.0.2 moves to client 3
        let clients = timeline.snapshot()
        #expect(clients.map(\.mac) == [3, 1].map(Self.mac))
        let one = try #require(clients.last)
        #expect(one.firstSeen == Date(timeIntervalSince1970: 9) && one.events.map(\.summary) == ["e9"])
        #expect(one.lastFile == nil, "the event that named a file has left the ring")
        let three = try #require(clients.first)
        #expect(three.events.map(\.summary) == (2...11).filter { $0 != 9 }.map { "e\($0)" })
        #expect(three.address == "10.0.0.2")
        for t in 12..<22 { timeline.record(event(4, Double(t), address: nil)) }
        #expect(timeline.snapshot().map(\.mac) == [Self.mac(4)])
    }
}
