import Foundation

/// Per-MAC values with a capacity and a time to live: what HostDecider remembers between one
/// client's DHCP, TFTP and HTTP requests. Over capacity it drops the least recently stored
/// quarter at once, so a storm of new MACs costs a sort per quarter, not a scan per insert.
/// Not thread-safe; the owner locks.
struct ClientCache<Value> {
    private var entries: [String: (value: Value, stored: Date)] = [:]
    let capacity: Int
    let ttl: TimeInterval

    init(capacity: Int, ttl: TimeInterval) {
        self.capacity = max(4, capacity)
        self.ttl = ttl
    }

    var count: Int { entries.count }

    mutating func set(_ key: String, _ value: Value, now: Date = Date()) {
        entries[key] = (value, now)
        if entries.count > capacity {
            let oldest = entries.map { ($0.key, $0.value.stored) }.sorted { $0.1 < $1.1 }.prefix(capacity / 4)
            for (key, _) in oldest { entries[key] = nil }
        }
    }

    func get(_ key: String, now: Date = Date()) -> Value? {
        guard let entry = entries[key], now.timeIntervalSince(entry.stored) < ttl else { return nil }
        return entry.value
    }
}
