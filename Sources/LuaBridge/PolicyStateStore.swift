import Foundation

/// Per-client state shared by every policy, hook and Lua state: a flat table per MAC with an
/// expiry. This is what lets a policy say "netboot once, then boot from disk".
public final class PolicyStateStore: @unchecked Sendable {
    struct Entry {
        var values: [String: PolicyValue]
        var expires: Date
    }

    public let defaultTTL: TimeInterval
    public let maxEntries: Int
    private let now: @Sendable () -> Date
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    private var writes = 0

    /// - Parameters:
    ///   - defaultTTL: seconds an entry lives when `state.set` gives no ttl.
    ///   - maxEntries: beyond this, the entries closest to expiry are dropped.
    ///   - now: the clock (tests inject one).
    public init(
        defaultTTL: TimeInterval = 3600, maxEntries: Int = 100_000,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.defaultTTL = defaultTTL
        self.maxEntries = max(1, maxEntries)
        self.now = now
    }

    /// Lower-case colon form, or nil when `mac` is not a MAC address (any of
    /// `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456`, `5254.0012.3456`).
    public static func normalize(mac: String) -> String? {
        var hex: [UInt8] = []
        for c in mac.utf8 {
            switch c {
            case UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "."): continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): hex.append(c)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): hex.append(c + 32)
            default: return nil
            }
        }
        guard hex.count == 12 else { return nil }
        var out: [UInt8] = []
        for (i, c) in hex.enumerated() {
            if i > 0 && i % 2 == 0 { out.append(UInt8(ascii: ":")) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func get(mac: String) -> [String: PolicyValue]? {
        guard let key = Self.normalize(mac: mac) else { return nil }
        let t = now()
        lock.lock()
        defer { lock.unlock() }
        guard let e = entries[key] else { return nil }
        if e.expires <= t {
            entries[key] = nil
            return nil
        }
        return e.values
    }

    public func set(mac: String, _ values: [String: PolicyValue], ttl: TimeInterval? = nil) {
        guard let key = Self.normalize(mac: mac) else { return }
        let t = now()
        lock.lock()
        defer { lock.unlock() }
        entries[key] = Entry(values: values, expires: t.addingTimeInterval(ttl ?? defaultTTL))
        writes += 1
        if writes % 1024 == 0 || entries.count > maxEntries { sweep(t) }
    }

    public func clear(mac: String) {
        guard let key = Self.normalize(mac: mac) else { return }
        lock.lock()
        entries[key] = nil
        lock.unlock()
    }

    /// Live entries (for status pages and tests).
    public func snapshot() -> [String: [String: PolicyValue]] {
        let t = now()
        lock.lock()
        defer { lock.unlock() }
        return entries.filter { $0.value.expires > t }.mapValues(\.values)
    }

    private func sweep(_ t: Date) {
        entries = entries.filter { $0.value.expires > t }
        if entries.count > maxEntries {
            let drop = entries.sorted { $0.value.expires < $1.value.expires }.prefix(entries.count - maxEntries)
            for (k, _) in drop { entries[k] = nil }
        }
    }
}
