/// A dictionary by MAC that keeps at most `capacity` entries and forgets the least recently
/// written one first: what the client timeline and the per-client caches need under a flood of
/// new MACs (a boot storm, a DHCP load test).
///
/// Every write costs O(1), and so does every eviction, one entry at a time. Dropping thousands
/// of entries at once (sorting them, or discarding a whole generation) made the DHCP server's
/// latency spike every few thousand packets; spread out, the same frees go unnoticed.
/// Not thread-safe; the owner locks. Keyed by `ClientKey` in the server (see there why).
struct RecentMap<Key: Hashable, Value> {
    private var entries: [Key: (value: Value, touch: UInt64)] = [:]
    /// Oldest write first: one (key, touch) per write. An entry whose touch is no longer its
    /// key's latest is stale and skipped when evicting.
    private var order: [(key: Key, touch: UInt64)] = []
    private var orderStart = 0
    private var touches: UInt64 = 0
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { entries.count }
    var values: [Value] { entries.values.map(\.value) }

    subscript(key: Key) -> Value? { entries[key]?.value }

    /// Stores `value` as the most recent entry; returns what had to go to stay within capacity.
    @discardableResult
    mutating func set(_ key: Key, _ value: Value) -> (key: Key, value: Value)? {
        update(key, default: value) { $0 = value }
    }

    /// Changes the entry in place (creating it from `make` first when absent) and marks it the
    /// most recent; returns the evicted entry, if any. In place: a copy out and back would copy
    /// whatever arrays the value holds.
    @discardableResult
    mutating func update(_ key: Key, default make: @autoclosure () -> Value, _ body: (inout Value) -> Void) -> (key: Key, value: Value)? {
        touches += 1
        let touch = touches
        // One lookup, changed in place through the dictionary's default subscript.
        func apply(_ entry: inout (value: Value, touch: UInt64)) {
            body(&entry.value)
            entry.touch = touch
        }
        apply(&entries[key, default: (make(), touch)])
        order.append((key, touch))
        var evicted: (key: Key, value: Value)?
        if entries.count > capacity { evicted = evictOldest() }
        compact()
        return evicted
    }

    private mutating func evictOldest() -> (key: Key, value: Value)? {
        while orderStart < order.count {
            let (key, touch) = order[orderStart]
            orderStart += 1
            // Through the index: `entries[key]?.touch` would copy the whole value out first
            // (a retain and a release of everything it holds, on memory long out of cache).
            guard let index = entries.index(forKey: key), entries.values[index].touch == touch else { continue }
            return (key, entries.remove(at: index).value.value)
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
            order = order[orderStart...].filter { entries.index(forKey: $0.key).map { entries.values[$0].touch } == $0.touch }
            orderStart = 0
        }
    }
}

/// A client's hardware address as a dictionary key: the six bytes of an Ethernet MAC packed
/// into an integer, or the text itself for any other spelling (a 20-byte InfiniBand address,
/// an empty one).
///
/// Why not the string: a MAC in colon form is 17 bytes, two past Swift's inline small
/// string, so every key was a heap object to retain, release, hash byte by byte and compare
/// with memcmp. Under a flood of new MACs each ProxyDHCP answer inserts one client into the
/// per-client caches and evicts another, and perf put those dictionaries at about a sixth of
/// the server's CPU per answer, ahead of the Lua policy call.
struct ClientKey: Hashable {
    let packed: UInt64
    let text: String?

    init(_ mac: String) {
        if let packed = Self.pack(mac) {
            self.packed = packed
            text = nil
        } else {
            packed = 0
            text = mac
        }
    }

    /// `52:54:00:12:34:56` (either case) as 0x525400123456; nil for anything else.
    static func pack(_ mac: String) -> UInt64? {
        var mac = mac
        return mac.withUTF8 { bytes -> UInt64? in
            guard bytes.count == 17 else { return nil }
            var value: UInt64 = 0
            for index in 0..<17 {
                let byte = bytes[index]
                if index % 3 == 2 {
                    guard byte == UInt8(ascii: ":") else { return nil }
                    continue
                }
                let nibble: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte &- UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte &- UInt8(ascii: "a") &+ 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte &- UInt8(ascii: "A") &+ 10
                default: return nil
                }
                value = value << 4 | UInt64(nibble)
            }
            return value
        }
    }
}
