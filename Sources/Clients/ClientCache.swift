import Foundation

/// Per-MAC values with a capacity and a time to live: what ClientDirectory remembers between one
/// client's DHCP, TFTP and HTTP requests. Past the capacity the least recently stored entry
/// goes, one per store (`RecentMap`), so a storm of new MACs costs O(1) each and never a burst.
/// Not thread-safe; the owner locks.
struct ClientCache<Value> {
    private var map: RecentMap<ClientKey, (value: Value, stored: Date)>
    let ttl: TimeInterval

    init(capacity: Int, ttl: TimeInterval) {
        map = RecentMap(capacity: max(4, capacity))
        self.ttl = ttl
    }

    /// Entries held, expired ones included until they are pushed out.
    var count: Int { map.count }

    mutating func set(_ key: String, _ value: Value, now: Date = Date()) {
        map.set(ClientKey(key), (value, now))
    }

    func get(_ key: String, now: Date = Date()) -> Value? {
        guard let entry = map[ClientKey(key)], now.timeIntervalSince(entry.stored) < ttl else { return nil }
        return entry.value
    }
}
