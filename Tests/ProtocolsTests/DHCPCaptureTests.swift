import Foundation
import Testing
import TestSupport
@testable import Protocols

/// Every bundled capture decodes to exactly its golden summary (regenerate with
/// `BOOTPOLICY_UPDATE_GOLDEN=1`), and every decoded message is encode/decode stable.
@Suite struct DHCPCaptureTests {
    struct Entry: Codable, Equatable {
        var packet: Int
        var source: String
        var destination: String
        var summary: DHCPMessage.Summary?
        var error: String?
    }

    static func entries(for url: URL) throws -> [Entry] {
        try Captures.dhcpDatagrams(url).map { d in
            var entry = Entry(packet: d.index, source: "\(d.source):\(d.sourcePort)",
                              destination: "\(d.destination):\(d.destinationPort)")
            do {
                entry.summary = try DHCPMessage(bytes: d.payload).summary
            } catch {
                entry.error = String(describing: error)
            }
            return entry
        }
    }

    static func json(_ entries: [Entry]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(entries) + Data("\n".utf8)
    }

    static var captureNames: [String] { Captures.files(in: Captures.bundled).map(\.lastPathComponent) }

    @Test(arguments: captureNames)
    func matchesGolden(_ name: String) throws {
        let entries = try Self.entries(for: Captures.bundled.appendingPathComponent(name))
        #expect(!entries.isEmpty, "\(name) holds no DHCP datagram")
        let golden = name + ".golden.json"
        if ProcessInfo.processInfo.environment["BOOTPOLICY_UPDATE_GOLDEN"] == "1" {
            try Self.json(entries).write(to: Captures.sourceTree.appendingPathComponent(golden))
            return
        }
        let data = try Data(contentsOf: Captures.bundled.appendingPathComponent(golden))
        let expected = try JSONDecoder().decode([Entry].self, from: data)
        #expect(entries == expected)
        #expect(try Self.json(entries) == data, "golden file \(golden) is not in canonical form")
    }

    @Test(.requires(Requirement(!Captures.files(in: Captures.shared).isEmpty,
                                "no reference captures in \(Captures.shared.path) (the shared/ folder beside the checkout)")))
    func sharedReferenceCapturesDecode() throws {
        let files = Captures.files(in: Captures.shared)
        var failures: [String] = []
        for url in files {
            for d in try Captures.dhcpDatagrams(url) {
                do { _ = try DHCPMessage(bytes: d.payload) } catch { failures.append("\(url.lastPathComponent)#\(d.index): \(error)") }
            }
        }
        // Only known-malformed packets may fail: tcpdump's rfc4388 test has two shifted
        // leasequery packets (#42, #43) whose cookie is not where RFC 2131 puts it.
        let known = ["dhcp-rfc4388.pcap#42", "dhcp-rfc4388.pcap#43"]
        #expect(failures.allSatisfy { f in known.contains { f.contains($0) } }, "\(failures)")
        // The suricata capture exercises option 52 on a real client.
        let overload = try #require(files.first { $0.lastPathComponent.contains("option-52-overload") },
                                    "the shared captures lack suricata's option-52-overload capture")
        let messages = try Captures.dhcpDatagrams(overload).compactMap { try? DHCPMessage(bytes: $0.payload) }
        #expect(messages.contains { $0.overload != nil })
    }

    /// Cross-check with an independent decoder: netboot's `dhcp.parsed` lists the options of
    /// the ASRock PXE DISCOVER, which must be what we decode from the same capture.
    @Test func agreesWithNetbootParsedDump() throws {
        let text = try String(contentsOf: Captures.bundled.appendingPathComponent("danderson_netboot__dhcp.parsed"), encoding: .utf8)
        let firstBlock = text.components(separatedBy: "======")[0]
        var expected: [UInt8: [UInt8]] = [:]
        for line in firstBlock.split(separator: "\n") {
            let parts = line.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let code = UInt8(parts[0]), let open = parts[1].firstIndex(of: "{") else { continue }
            let inner = parts[1][parts[1].index(after: open)...].dropLast()
            expected[code] = inner.split(separator: ",").map { UInt8($0.trimmingCharacters(in: .whitespaces).dropFirst(2), radix: 16)! }
        }
        let datagrams = try Captures.dhcpDatagrams(Captures.bundled.appendingPathComponent("danderson_netboot__dhcp.pcap"))
        let message = try DHCPMessage(bytes: try #require(datagrams.first).payload)
        var actual = message.options.byCode
        actual[53] = nil  // the dump prints the type as the heading
        #expect(actual == expected)
        #expect(message.clientMAC == "d0:50:99:4e:05:57")
        #expect(message.clientArchitectures == [.bios])
    }
}
