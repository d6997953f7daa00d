import Dispatch
import Foundation

/// Per-MAC values with a capacity and a time to live: what HostDecider remembers between one
/// client's DHCP, TFTP and HTTP requests. Two generations: new values go into the young one;
/// when it holds half the capacity it becomes the old one and the previous old one is dropped
/// whole. No sort and no scan per insert, so a storm of new MACs costs O(1) each.
/// Not thread-safe; the owner locks.
struct ClientCache<Value> {
    private var young: [String: (value: Value, stored: Date)] = [:]
    private var old: [String: (value: Value, stored: Date)] = [:]
    let capacity: Int
    let ttl: TimeInterval

    init(capacity: Int, ttl: TimeInterval) {
        self.capacity = max(4, capacity)
        self.ttl = ttl
    }

    /// Entries held (a key in both generations counts once, by its young entry).
    var count: Int { young.count + old.keys.filter { young[$0] == nil }.count }

    mutating func set(_ key: String, _ value: Value, now: Date = Date()) {
        young[key] = (value, now)
        if young.count >= capacity / 2 {
            let dropped = old
            old = young
            young = [:]
            young.reserveCapacity(capacity / 2)
            // Freeing thousands of entries takes milliseconds: do it off the caller's thread
            // (an event loop), which only hands over the last reference.
            Self.reaper.async { withExtendedLifetime(dropped) {} }
        }
    }

    private static var reaper: DispatchQueue { clientCacheReaper }

    func get(_ key: String, now: Date = Date()) -> Value? {
        guard let entry = young[key] ?? old[key], now.timeIntervalSince(entry.stored) < ttl else { return nil }
        return entry.value
    }
}

private let clientCacheReaper = DispatchQueue(label: "bootpolicy.client-cache.reaper", qos: .utility)
