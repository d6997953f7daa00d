import Foundation
import NIOConcurrencyHelpers
import Protocols

/// Recent clients and what happened to each, newest first: what the status page, `/api/clients`
/// and the lab read. Bounded in clients and in events per client.
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
    let maxClients: Int
    let maxEvents: Int

    init(maxClients: Int = 1024, maxEvents: Int = 64) {
        self.maxClients = maxClients
        self.maxEvents = maxEvents
    }

    func record(_ event: BootEvent) {
        guard !event.mac.isEmpty else { return }
        lock.withLock {
            var client = clients[event.mac] ?? Client(
                mac: event.mac, firstSeen: event.time, lastSeen: event.time, events: [])
            client.lastSeen = event.time
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" {
                client.address = address
                macByAddress[address] = event.mac
            }
            if let arch = event.fields["arch"] { client.arch = arch }
            if let firmware = event.fields["firmware"] { client.firmware = firmware }
            if let policy = event.fields["policy"] { client.policy = policy }
            if let file = event.fields["file"] ?? event.fields["path"] { client.lastFile = file }
            client.events.append(Event(time: event.time, stage: event.stage.rawValue, summary: event.summary, fields: event.fields))
            if client.events.count > maxEvents { client.events.removeFirst(client.events.count - maxEvents) }
            clients[event.mac] = client
            if clients.count > maxClients, let oldest = clients.values.min(by: { $0.lastSeen < $1.lastSeen }) {
                clients[oldest.mac] = nil
                if let address = oldest.address, macByAddress[address] == oldest.mac { macByAddress[address] = nil }
            }
        }
    }

    /// The MAC of the client last seen at an address (learned from DHCP, TFTP and HTTP events).
    func mac(forAddress address: String) -> String? {
        lock.withLock { macByAddress[address] }
    }

    /// Tells the timeline an address belongs to a MAC without recording an event.
    func learn(address: String, mac: String) {
        lock.withLock { macByAddress[address] = mac }
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
