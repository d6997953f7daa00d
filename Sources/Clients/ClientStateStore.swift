import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import Protocols

/// One value of a client's state: flat, as `state.set` and (later) the control API accept.
public enum StateValue: Sendable, Equatable, Hashable {
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)

    /// Bytes this value is counted as against the per-client bound.
    var size: Int {
        switch self {
        case .string(let s): return s.utf8.count
        case .integer, .number: return 8
        case .bool: return 1
        }
    }
}

extension StateValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// What the store keeps for one client.
public struct ClientState: Sendable, Equatable {
    public var values: [String: StateValue]
    public var expires: Date
    public init(values: [String: StateValue], expires: Date) {
        self.values = values
        self.expires = expires
    }
}

/// Bounds on what policies may keep, so that spoofed MACs or a runaway policy cannot grow the
/// server without limit (docs/state.md gives the memory they imply).
public struct StateLimits: Sendable, Equatable {
    /// Seconds a client's state lives when `state.set` gives no ttl (config `state.ttl`).
    public var defaultTTL: TimeInterval
    /// Clients with live state (config `state.max_clients`). When full, a new client's
    /// `state.set` is refused (and counted); existing clients' state is never pushed out.
    public var maxClients: Int
    /// Bytes of keys and values one client may hold (config `state.max_client_bytes`).
    public var maxClientBytes: Int
    /// Keys one client may hold.
    public var maxKeys: Int

    public init(defaultTTL: TimeInterval = 3600, maxClients: Int = 100_000, maxClientBytes: Int = 4096, maxKeys: Int = 64) {
        self.defaultTTL = defaultTTL
        self.maxClients = max(1, maxClients)
        self.maxClientBytes = max(1, maxClientBytes)
        self.maxKeys = max(1, maxKeys)
    }
}

/// Why a state change was refused. The text is what the policy's hook fails with.
public struct StateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    /// The store cannot take writes now (its backend is unreachable); the write was refused.
    public var unavailable: Bool
    public init(_ description: String, unavailable: Bool = false) {
        self.description = description
        self.unavailable = unavailable
    }
}

/// Per-client state shared by every policy, hook and Lua state: a flat table per MAC with an
/// expiry. This is what lets a policy say "netboot once, then boot from disk".
///
/// Reads come from memory only. With a durable backend every change is also queued for the
/// store's writer thread (`StateWriter`), which commits queued changes together; a caller that
/// must not answer before its change is on disk waits with `waitDurable(through:)`.
///
/// Expiry is kept in a min-heap, so a `set` costs O(log n) however many clients are stored, and
/// expired clients are dropped a few at a time as later writes pass them.
public final class ClientStateStore: @unchecked Sendable {
    public let limits: StateLimits
    /// "memory" or the backend's description (`sqlite:/var/lib/bootpolicy/state.db`).
    public let location: String
    private let now: @Sendable () -> Date
    private let lock = NIOLock()
    private var entries: [String: ClientState] = [:]
    private var expiry = ExpiryHeap()
    let writer: StateWriter?
    private let refusals: Counter
    private let expirations: Counter
    /// Why the shared store's change feed is down, or nil; writes are refused meanwhile.
    private var feedDown: String?
    private let remoteApplied = Counter(label: "bootpolicy_state_remote_changes_total")
    /// A shadow chain's store: reads fall through to the live store for a client this one has
    /// not written; writes stay here, in memory, and never reach the live store or disk.
    private let underlay: ClientStateStore?
    /// Clients cleared here that the underlay still has.
    private var hidden: Set<String> = []

    /// A store in memory only.
    public convenience init(limits: StateLimits = StateLimits(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.init(limits: limits, writer: nil, loaded: [:], now: now)
    }

    /// A store over `live` that keeps its own writes apart (a shadow chain's).
    public convenience init(overlaying live: ClientStateStore) {
        self.init(limits: live.limits, writer: nil, loaded: [:], now: live.now, underlay: live)
    }

    /// A store whose changes are made durable by `writer`, starting from what its backend held.
    init(limits: StateLimits, writer: StateWriter?, loaded: [String: ClientState], now: @escaping @Sendable () -> Date,
         underlay: ClientStateStore? = nil) {
        self.limits = limits
        self.writer = writer
        self.underlay = underlay
        self.location = underlay.map { "overlay on \($0.location)" } ?? writer?.backendDescription ?? "memory"
        self.now = now
        refusals = Counter(label: "bootpolicy_state_refused_total")
        expirations = Counter(label: "bootpolicy_state_expired_total")
        let t = now()
        for (mac, state) in loaded where state.expires > t {
            entries[mac] = state
            expiry.push(mac: mac, expires: state.expires)
        }
    }

    /// Clients with state (expired ones included until they are swept).
    public var count: Int { lock.withLock { entries.count } }

    public func get(mac: String) -> [String: StateValue]? {
        entry(mac: mac)?.values
    }

    /// Own entry, or (an overlay) the live store's unless cleared here. Called with the lock.
    private func current(_ key: String, _ t: Date) -> ClientState? {
        if let e = entries[key] { return e.expires > t ? e : nil }
        guard let underlay, !hidden.contains(key) else { return nil }
        return underlay.entry(mac: key)
    }

    /// Why writes are refused now, or nil: the durable store's last commit failed, or a shared
    /// store's change feed is down (a write this server cannot share would make the servers
    /// disagree). Reads go on from memory meanwhile; recovery is automatic.
    public var unavailableReason: String? {
        if let why = writer?.unavailableReason { return why }
        return lock.withLock { feedDown.map { "its change feed is down: \($0)" } }
    }

    private func refuseWhenUnavailable() throws(StateError) {
        guard let why = unavailableReason else { return }
        refusals.increment()
        throw StateError("state store \(location) is unavailable (\(why)); write refused", unavailable: true)
    }

    /// Replaces the client's table. Throws, changing nothing, when the table is over the
    /// per-client bound, the store is full, or the durable store is unavailable.
    public func set(mac: String, _ values: [String: StateValue], ttl: TimeInterval? = nil) throws(StateError) {
        guard let key = MACAddress.normalize(mac) else { throw StateError("not a MAC address: \(mac)") }
        try refuseWhenUnavailable()
        let ttl = ttl ?? limits.defaultTTL
        guard ttl > 0, !ttl.isNaN else { throw StateError("ttl must be a positive number of seconds") }
        try check(values)
        let t = now()
        lock.lock()
        defer { lock.unlock() }
        try admit(key, t)
        store(key, ClientState(values: values, expires: t.addingTimeInterval(min(ttl, Self.longestTTL))))
    }

    public func clear(mac: String) throws(StateError) {
        guard let key = MACAddress.normalize(mac) else { return }
        try refuseWhenUnavailable()
        lock.withLock {
            hide(key)
            guard entries.removeValue(forKey: key) != nil else { return }
            writer?.enqueue(.clearState(mac: key))
        }
    }

    /// An overlay's clear hides the live entry too. Called with the lock.
    private func hide(_ key: String) {
        guard underlay != nil else { return }
        if hidden.count >= limits.maxClients { hidden.removeAll() }
        hidden.insert(key)
    }

    /// Live entries (for status pages, the control API and tests).
    public func snapshot() -> [String: ClientState] {
        let t = now()
        return lock.withLock { entries.filter { $0.value.expires > t } }
    }

    /// The number of changes queued so far; with `waitDurable(through:)`, lets a caller wait
    /// for exactly the changes made before this point. 0 without a durable backend.
    public var mark: UInt64 { writer?.enqueued ?? 0 }

    /// Waits until every change up to `mark` is committed; false when the backend could not
    /// commit them within `timeout` (they stay queued and are retried).
    public func waitDurable(through mark: UInt64, timeout: TimeInterval = 2) -> Bool {
        writer?.wait(through: mark, timeout: timeout) ?? true
    }

    /// The same without blocking: `done(true)` once every change up to `mark` is committed,
    /// `done(false)` after `timeout`; at once without a durable backend.
    public func whenDurable(through mark: UInt64, timeout: TimeInterval = 2, _ done: @escaping @Sendable (Bool) -> Void) {
        guard let writer else { return done(true) }
        writer.whenCommitted(through: mark, timeout: timeout, done)
    }

    /// A client's live state with its expiry (the control API shows both).
    public func entry(mac: String) -> ClientState? {
        guard let key = MACAddress.normalize(mac) else { return nil }
        let t = now()
        return lock.withLock { current(key, t) }
    }

    /// Reads and replaces one client's table in one step, so that a merge (the control API's
    /// PATCH) cannot lose a change made between its read and its write. `change` gets the live
    /// table (nil when none) and returns the new one; nil or an empty table clears the client.
    /// Without `ttl` an existing client keeps its expiry and a new one gets the default.
    /// Returns the table before and after; throws, changing nothing, as `set` does.
    @discardableResult
    public func update(mac: String, ttl: TimeInterval? = nil,
                       _ change: ([String: StateValue]?) throws(StateError) -> [String: StateValue]?)
        throws(StateError) -> (before: ClientState?, after: ClientState?)
    {
        guard let key = MACAddress.normalize(mac) else { throw StateError("not a MAC address: \(mac)") }
        if let ttl, !(ttl > 0) { throw StateError("ttl must be a positive number of seconds") }
        try refuseWhenUnavailable()
        let t = now()
        lock.lock()
        defer { lock.unlock() }
        let before = current(key, t)
        guard let values = try change(before?.values), !values.isEmpty else {
            hide(key)
            if entries.removeValue(forKey: key) != nil { writer?.enqueue(.clearState(mac: key)) }
            return (before, nil)
        }
        try check(values)
        try admit(key, t)
        let expires = ttl.map { t.addingTimeInterval(min($0, Self.longestTTL)) }
            ?? before?.expires ?? t.addingTimeInterval(limits.defaultTTL)
        let state = ClientState(values: values, expires: expires)
        store(key, state)
        return (before, state)
    }

    /// A ttl longer than this (a century) is this.
    static let longestTTL: TimeInterval = 100 * 365 * 86_400

    /// Makes room for `key` when it is a new client: expired clients go first; a full store
    /// refuses it. Called with the lock.
    private func admit(_ key: String, _ t: Date) throws(StateError) {
        sweep(t, atMost: 4)
        guard entries[key] == nil, entries.count >= limits.maxClients else { return }
        sweep(t, atMost: .max)
        if entries.count >= limits.maxClients {
            refusals.increment()
            throw StateError("the store holds state for \(limits.maxClients) clients (state.max_clients); \(key) refused")
        }
    }

    /// Keeps `state` for `key` and queues it for the store. Called with the lock.
    private func store(_ key: String, _ state: ClientState) {
        entries[key] = state
        if underlay != nil { hidden.remove(key) }
        expiry.push(mac: key, expires: state.expires)
        writer?.enqueue(.state(mac: key, state))
        if expiry.count > 2 * entries.count + 1024 { expiry.rebuild(from: entries) }
    }

    /// The per-client bounds `set` and `update` enforce.
    private func check(_ values: [String: StateValue]) throws(StateError) {
        if values.count > limits.maxKeys {
            refusals.increment()
            throw StateError("\(values.count) keys is more than the \(limits.maxKeys) a client may hold")
        }
        for (k, v) in values {
            if case .number(let d) = v, !d.isFinite { throw StateError("value of '\(k)' must be a finite number, got \(d)") }
        }
        let bytes = values.reduce(0) { $0 + $1.key.utf8.count + $1.value.size }
        if bytes > limits.maxClientBytes {
            refusals.increment()
            throw StateError("the table is \(bytes) bytes, more than the \(limits.maxClientBytes) a client may hold (state.max_client_bytes)")
        }
    }

    /// Drops up to `limit` clients whose state has expired, soonest first. Called with the lock.
    private func sweep(_ t: Date, atMost limit: Int) {
        var dropped = 0
        while dropped < limit, let top = expiry.top, top.expires <= t {
            expiry.pop()
            // A heap entry is stale when the client was written again (a later expiry) or cleared.
            guard let e = entries[top.mac], e.expires == top.expires else { continue }
            entries[top.mac] = nil
            writer?.enqueue(.clearState(mac: top.mac))
            dropped += 1
        }
        if dropped > 0 { expirations.increment(by: dropped) }
    }
}

extension ClientStateStore: StateFollower {
    /// Another server's changes: applied to memory (not queued: they are already in the
    /// store), except for a client with a change of this server's not yet committed. That
    /// change commits after the remote one, so it is the newer; and every server re-reads a
    /// client after each commit of it, so all of them end on the last row committed.
    public func remoteChanged(_ rows: [String: ClientState?]) {
        let t = now()
        var applied = 0
        lock.withLock {
            for (mac, row) in rows where writer?.hasUncommitted(mac: mac) != true {
                if let row, row.expires > t {
                    guard entries[mac] != row else { continue }
                    entries[mac] = row
                    expiry.push(mac: mac, expires: row.expires)
                } else if entries.removeValue(forKey: mac) == nil {
                    continue
                }
                applied += 1
            }
            if expiry.count > 2 * entries.count + 1024 { expiry.rebuild(from: entries) }
        }
        if applied > 0 { remoteApplied.increment(by: applied) }
    }

    public func remoteResync(_ all: [String: ClientState]) {
        let t = now()
        lock.withLock {
            for mac in entries.keys where all[mac] == nil && writer?.hasUncommitted(mac: mac) != true {
                entries[mac] = nil
            }
            for (mac, row) in all where row.expires > t && writer?.hasUncommitted(mac: mac) != true {
                entries[mac] = row
            }
            expiry.rebuild(from: entries)
        }
    }

    public func remoteFeed(connected: Bool, reason: String?) {
        lock.withLock { feedDown = connected ? nil : (reason ?? "disconnected") }
    }
}

/// A binary min-heap of (expiry, MAC): the next client to expire in O(1), a push or pop in
/// O(log n). Entries are not removed when a client is written again; they are skipped when
/// popped, and the heap is rebuilt once they outnumber the live ones.
struct ExpiryHeap {
    struct Item { var expires: Date; var mac: String }
    private var items: [Item] = []

    var count: Int { items.count }
    var top: Item? { items.first }

    mutating func push(mac: String, expires: Date) {
        items.append(Item(expires: expires, mac: mac))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].expires < items[parent].expires else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, items[l].expires < items[m].expires { m = l }
            if r < items.count, items[r].expires < items[m].expires { m = r }
            guard m != i else { break }
            items.swapAt(i, m)
            i = m
        }
    }

    mutating func rebuild(from entries: [String: ClientState]) {
        items = []
        items.reserveCapacity(entries.count)
        for (mac, state) in entries { push(mac: mac, expires: state.expires) }
    }
}
