import Foundation
import NIOConcurrencyHelpers
import Protocols

/// Recent clients and what happened to each, newest first: what the status page, `/api/clients`
/// and the lab read. Bounded in clients (at most `maxClients`; past that the least recently
/// seen eighth goes at once) and in events per client.
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
        var events: [Event]

        mutating func update(with event: BootEvent, maxEvents: Int) {
            lastSeen = event.time
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" { self.address = address }
            if let arch = event.fields["arch"] { self.arch = arch }
            if let firmware = event.fields["firmware"] { self.firmware = firmware }
            if let policy = event.fields["policy"] { self.policy = policy }
            if let file = event.fields["file"] ?? event.fields["path"] { lastFile = file }
            events.append(Event(time: event.time, stage: event.stage.rawValue, summary: event.summary, fields: event.fields))
            if events.count > maxEvents { events.removeFirst(events.count - maxEvents) }
        }
    }

    struct Event: Codable, Sendable {
        var time: Date
        var stage: String
        var summary: String
        var fields: [String: String]
    }

    private let lock = NIOLock()
    private var clients: [String: Client] = [:]
    private var macByAddress: [String: String] = [:]
    /// Each client's lastSeen again, apart: eviction sorts these without copying any `Client`.
    private var lastSeenByMAC: [String: Date] = [:]
    let maxClients: Int
    let maxEvents: Int

    init(maxClients: Int = 1024, maxEvents: Int = 64) {
        self.maxClients = maxClients
        self.maxEvents = maxEvents
    }

    func record(_ event: BootEvent) {
        guard !event.mac.isEmpty else { return }
        lock.withLock {
            // Mutated in place: a copy out of the dictionary and back would copy `events` too.
            let isNew = clients[event.mac] == nil
            clients[event.mac, default: Client(mac: event.mac, firstSeen: event.time, lastSeen: event.time, events: [])]
                .update(with: event, maxEvents: maxEvents)
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" {
                macByAddress[address] = event.mac
            }
            lastSeenByMAC[event.mac] = event.time
            if isNew && clients.count > maxClients { evictLeastRecentlySeen() }
        }
    }

    /// Drops the least recently seen eighth of the clients at once. Under a flood of new MACs
    /// (a boot storm, a DHCP load test) this costs one sort per maxClients/8 new clients;
    /// looking for the single oldest client on every new one was a scan of all clients per
    /// packet, a third of the ProxyDHCP server's CPU at 10,000 DISCOVERs/s. Call with the lock held.
    private func evictLeastRecentlySeen() {
        let keep = max(1, maxClients - maxClients / 8)
        let ages = lastSeenByMAC.sorted { $0.value < $1.value }
        for (mac, _) in ages.prefix(max(0, ages.count - keep)) {
            lastSeenByMAC[mac] = nil
            if let address = clients.removeValue(forKey: mac)?.address, macByAddress[address] == mac {
                macByAddress[address] = nil
            }
        }
    }

    /// The MAC of the client last seen at an address (learned from DHCP, TFTP and HTTP events).
    func mac(forAddress address: String) -> String? {
        lock.withLock { macByAddress[address] }
    }

    func snapshot() -> [Client] {
        lock.withLock { clients.values.sorted { $0.lastSeen > $1.lastSeen } }
    }

    func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return (try? Array(encoder.encode(["clients": snapshot()]))) ?? Array("{\"clients\":[]}".utf8)
    }
}
