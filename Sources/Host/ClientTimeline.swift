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
    /// Least recently seen first: one (mac, touch) per event. An entry whose touch is no longer
    /// the client's latest is stale and skipped, so eviction pops from the front in O(1).
    private var order: [(mac: String, touch: UInt64)] = []
    private var orderStart = 0
    private var touchByMAC: [String: UInt64] = [:]
    private var touches: UInt64 = 0
    let maxClients: Int
    let maxEvents: Int

    init(maxClients: Int = 1024, maxEvents: Int = 64) {
        self.maxClients = max(1, maxClients)
        self.maxEvents = maxEvents
    }

    func record(_ event: BootEvent) {
        guard !event.mac.isEmpty else { return }
        lock.withLock {
            // Mutated in place: a copy out of the dictionary and back would copy `events` too.
            clients[event.mac, default: Client(mac: event.mac, firstSeen: event.time, lastSeen: event.time, events: [])]
                .update(with: event, maxEvents: maxEvents)
            if let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" {
                macByAddress[address] = event.mac
            }
            touches += 1
            touchByMAC[event.mac] = touches
            order.append((event.mac, touches))
            while clients.count > maxClients { evictLeastRecentlySeen() }
            compactOrder()
        }
    }

    /// Drops the least recently seen client. A flood of new MACs (a boot storm, a DHCP load
    /// test) costs O(1) per new client, spread evenly: sorting all clients now and then made
    /// latency spikes, and scanning them per packet was a third of the server's CPU.
    /// Call with the lock held.
    private func evictLeastRecentlySeen() {
        while orderStart < order.count {
            let (mac, touch) = order[orderStart]
            orderStart += 1
            guard touchByMAC[mac] == touch else { continue }
            touchByMAC[mac] = nil
            if let address = clients.removeValue(forKey: mac)?.address, macByAddress[address] == mac {
                macByAddress[address] = nil
            }
            return
        }
    }

    /// Keeps `order` within a few times `maxClients`: drops what was popped, and when a few
    /// busy clients fill it with repeats, the stale entries. Amortized O(1) per event.
    private func compactOrder() {
        if orderStart > maxClients {
            order.removeFirst(orderStart)
            orderStart = 0
        }
        if order.count > 4 * maxClients {
            order = order[orderStart...].filter { touchByMAC[$0.mac] == $0.touch }
            orderStart = 0
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
