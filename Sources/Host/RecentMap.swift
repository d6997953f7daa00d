/// A dictionary by MAC that keeps at most `capacity` entries and forgets the least recently
/// written one first: what the client timeline and the per-client caches need under a flood of
/// new MACs (a boot storm, a DHCP load test).
///
/// Every write costs O(1), and so does every eviction, one entry at a time. Dropping thousands
/// of entries at once (sorting them, or discarding a whole generation) made the DHCP server's
/// latency spike every few thousand packets; spread out, the same frees go unnoticed.
/// Not thread-safe; the owner locks.
struct RecentMap<Value> {
    private var entries: [String: (value: Value, touch: UInt64)] = [:]
    /// Oldest write first: one (key, touch) per write. An entry whose touch is no longer its
    /// key's latest is stale and skipped when evicting.
    private var order: [(key: String, touch: UInt64)] = []
    private var orderStart = 0
    private var touches: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { entries.count }
    var values: [Value] { entries.values.map(\.value) }

    subscript(key: String) -> Value? { entries[key]?.value }

    /// Stores `value` as the most recent entry; returns what had to go to stay within capacity.
    @discardableResult
    mutating func set(_ key: String, _ value: Value) -> (key: String, value: Value)? {
        update(key, default: value) { $0 = value }
    }

    /// Changes the entry in place (creating it from `make` first when absent) and marks it the
    /// most recent; returns the evicted entry, if any. In place: a copy out and back would copy
    /// whatever arrays the value holds.
    @discardableResult
    mutating func update(_ key: String, default make: @autoclosure () -> Value, _ body: (inout Value) -> Void) -> (key: String, value: Value)? {
        touches += 1
        let touch = touches
        // One lookup, changed in place through the dictionary's default subscript.
        func apply(_ entry: inout (value: Value, touch: UInt64)) {
            body(&entry.value)
            entry.touch = touch
        }
        apply(&entries[key, default: (make(), touch)])
        order.append((key, touch))
        var evicted: (key: String, value: Value)?
        if entries.count > capacity { evicted = evictOldest() }
        compact()
        return evicted
    }

    private mutating func evictOldest() -> (key: String, value: Value)? {
        while orderStart < order.count {
            let (key, touch) = order[orderStart]
            orderStart += 1
            guard entries[key]?.touch == touch, let removed = entries.removeValue(forKey: key) else { continue }
            return (key, removed.value)
        }
        return nil
    }

    /// Keeps `order` within a few times `capacity`: drops what was popped and, when a few busy
    /// keys fill it with repeats, the stale entries. Amortized O(1) per write.
    private mutating func compact() {
        if orderStart > capacity {
            order.removeFirst(orderStart)
            orderStart = 0
        }
        if order.count > 4 * capacity {
            order = order[orderStart...].filter { entries[$0.key]?.touch == $0.touch }
            orderStart = 0
        }
    }
}
