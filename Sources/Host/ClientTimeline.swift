import Foundation
import NIOConcurrencyHelpers
import Protocols

/// Recent clients and what happened to each, newest first: what the status page, `/api/clients`
/// and the lab read. Bounded in clients (at most `maxClients`; past that the least recently
/// seen goes) and in events per client.
final class ClientTimeline: BootEventSink, @unchecked Sendable {
    struct Client: Codable, Sendable {
        var mac: String
        var address: String?
        var arch: String?
        var firmware: String?
        var lastFile: String?
        var policy: String?
        var firstSeen: Date
        var lastSeen: Date
        /// Written from `recorded` when the timeline is read (see `snapshot`).
        var events: [Event]
        /// As recorded: an event's summary and fields are built only when someone looks.
        var recorded: [BootEvent] = []

        enum CodingKeys: String, CodingKey {
            case mac, address, arch, firmware, lastFile, policy, firstSeen, lastSeen, events
        }

        mutating func update(with event: BootEvent, maxEvents: Int) {
            lastSeen = event.time
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" { self.address = address }
            if let arch = event.arch { self.arch = arch }
            if let firmware = event.firmware { self.firmware = firmware }
            if let policy = event.policy { self.policy = policy }
            if let file = event.file { lastFile = file }
            recorded.append(event)
            if recorded.count > maxEvents { recorded.removeFirst(recorded.count - maxEvents) }
        }

        /// This client with `events` written out.
        func materialized() -> Client {
            var copy = self
            copy.events = recorded.map { event in
                let (summary, fields) = event.resolved
                return Event(time: event.time, stage: event.stage.rawValue, summary: summary, fields: fields)
            }
            return copy
        }
    }

    struct Event: Codable, Sendable {
        var time: Date
        var stage: String
        var summary: String
        var fields: [String: String]
    }

    /// A client as stored: a reference, so recording an event changes it in place and an
    /// eviction moves a pointer, not the struct with its strings and arrays.
    private final class Entry {
        var client: Client
        init(_ client: Client) { self.client = client }
    }

    private let lock = NIOLock()
    private var clients: RecentMap<ClientKey, Entry>
    private var macByAddress: [String: String] = [:]
    let maxEvents: Int

    init(maxClients: Int = 1024, maxEvents: Int = 64) {
        clients = RecentMap(capacity: maxClients)
        self.maxEvents = maxEvents
    }

    func record(_ event: BootEvent) {
        guard !event.mac.isEmpty else { return }
        lock.withLock {
            let evicted = clients.update(ClientKey(event.mac), default: Entry(Client(mac: event.mac, firstSeen: event.time, lastSeen: event.time, events: []))) {
                $0.client.update(with: event, maxEvents: maxEvents)
            }
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" {
                macByAddress[address] = event.mac
            }
            // The least recently seen client goes, and its address mapping with it.
            if let (_, entry) = evicted, let address = entry.client.address, macByAddress[address] == entry.client.mac {
                macByAddress[address] = nil
            }
        }
    }

    /// The MAC of the client last seen at an address (learned from DHCP, TFTP and HTTP events).
    func mac(forAddress address: String) -> String? {
        lock.withLock { macByAddress[address] }
    }

    func snapshot() -> [Client] {
        // Summaries and fields are written outside the lock.
        lock.withLock { clients.values.map(\.client) }.sorted { $0.lastSeen > $1.lastSeen }.map { $0.materialized() }
    }

    func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return (try? Array(encoder.encode(["clients": snapshot()]))) ?? Array("{\"clients\":[]}".utf8)
    }
}
