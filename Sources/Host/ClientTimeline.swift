import Foundation
import NIOConcurrencyHelpers
import Protocols

/// Recent clients and what happened to each, newest first: what the status page, `/api/clients`
/// and the lab read. An event sink only: nothing here is read back to answer a request (what
/// the server knows of a client lives in `ClientDirectory`).
///
/// Kept as the last `capacity` events in one ring, grouped by client only when someone reads
/// it. At most `maxClients` clients are shown (the most recently seen) with at most `maxEvents`
/// events each; a client's `firstSeen` is its oldest event still in the ring.
///
/// Why a ring and not a map of clients: ProxyDHCP records an event per answer, and under a flood
/// of new MACs (a boot storm, a load test) a map made a client object and its event list for
/// every packet and freed the least recent one: three allocations, a hash insert and an
/// eviction lookup per answer, about a tenth of the answer's user-space time. Writing into the
/// ring allocates nothing; the grouping costs a few milliseconds per read of the status page.
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
    /// Events in the order recorded; once full, event `n` lives at `n % capacity`.
    private var ring: [BootEvent] = []
    /// Events recorded so far (the next one's number).
    private var recorded = 0
    let capacity: Int
    let maxClients: Int
    let maxEvents: Int

    init(capacity: Int = 16_384, maxClients: Int = 1024, maxEvents: Int = 64) {
        self.capacity = max(1, capacity)
        self.maxClients = maxClients
        self.maxEvents = maxEvents
    }

    func record(_ event: BootEvent) {
        guard !event.mac.isEmpty else { return }
        lock.withLock {
            let number = recorded
            recorded += 1
            if ring.count < capacity {
                ring.append(event)
            } else {
                ring[number % capacity] = event
            }
        }
    }

    /// The events still held, oldest first: a real copy, so the writers never pay for one.
    private func events() -> [BootEvent] {
        lock.withLock {
            var copy: [BootEvent] = []
            copy.reserveCapacity(ring.count)
            let start = ring.count < capacity ? 0 : recorded % capacity
            copy.append(contentsOf: ring[start...])
            copy.append(contentsOf: ring[..<start])
            return copy
        }
    }

    func snapshot() -> [Client] {
        // Newest first: a client's row takes the newest value of each field that any of its
        // events set, and its events are the newest `maxEvents`.
        var index: [String: Int] = [:]
        var clients: [Client] = []
        var kept: [[BootEvent]] = []
        for event in events().reversed() {
            let i: Int
            if let known = index[event.mac] {
                i = known
            } else {
                guard clients.count < maxClients else { continue }
                i = clients.count
                index[event.mac] = i
                clients.append(Client(mac: event.mac, firstSeen: event.time, lastSeen: event.time, events: []))
                kept.append([])
            }
            clients[i].firstSeen = event.time
            if clients[i].address == nil, let address = event.clientAddress, !address.isEmpty, address != "0.0.0.0" {
                clients[i].address = address
            }
            if clients[i].arch == nil { clients[i].arch = event.arch }
            if clients[i].firmware == nil { clients[i].firmware = event.firmware }
            if clients[i].policy == nil { clients[i].policy = event.policy }
            if clients[i].lastFile == nil { clients[i].lastFile = event.file }
            if kept[i].count < maxEvents { kept[i].append(event) }
        }
        // Summaries and fields are written here, outside the lock.
        for i in clients.indices {
            clients[i].events = kept[i].reversed().map { event in
                let (summary, fields) = event.resolved
                return Event(time: event.time, stage: event.stage.rawValue, summary: summary, fields: fields)
            }
        }
        return clients.sorted { $0.lastSeen > $1.lastSeen }
    }

    func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return (try? Array(encoder.encode(["clients": snapshot()]))) ?? Array("{\"clients\":[]}".utf8)
    }
}
