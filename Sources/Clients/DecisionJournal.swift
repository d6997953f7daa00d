import CLinux
import Foundation
import GRDB
import Logging
import Metrics
import Protocols

/// One decision as the journal keeps it: enough to say why a machine got its answer (the
/// chain's version, what each policy said, the decision, the reply) and to ask a candidate
/// chain the same question again (`request` is a fixture, as `bootpolicy record` writes).
public struct JournalEntry: Sendable, Codable, Equatable {
    public struct Step: Sendable, Codable, Equatable {
        public var policy: String
        public var hook: String
        public var outcome: String
        public var micros: Double
    }

    /// The store's sequence number (nil until stored).
    public var id: Int64?
    public var time: Date
    public var mac: String
    public var kind: BootRequest.Kind
    /// One line: message type, arch, firmware, iPXE, path.
    public var summary: String
    /// `PolicyChain.version` of the chain that decided.
    public var version: String
    /// The policy that decided; nil when none did.
    public var policy: String?
    public var decision: BootDecision?
    public var steps: [Step]
    /// What the client was sent, in a few lines (DHCP: the reply's boot fields).
    public var reply: [String]
    public var request: Fixture
}

/// Where journal entries are kept. One writer (the journal's thread); readers any time.
public protocol JournalStore: AnyObject, Sendable {
    var description: String { get }
    /// Appends in one transaction, giving each entry the next id.
    func append(_ entries: [JournalEntry]) throws
    /// Deletes entries older than `before`, then all but the newest `keep`. Returns how many.
    /// Called after a write that took the store past `keep`, and once a second.
    func prune(before: Date, keep: Int) throws -> Int
    /// Entries oldest first, for one MAC or all, from `since`, at most `limit` (the newest).
    func entries(mac: String?, since: Date?, limit: Int) throws -> [JournalEntry]
    func count() throws -> Int
    func close()
}

/// The decision journal (config `journal:`): every decision the pipeline makes, appended off
/// the hot path. `record` only queues (a lock and an append); a thread of its own writes what
/// is queued every `flushEvery` or every `batchLimit` entries, in one transaction, and prunes by
/// age and count. An answer never waits for the journal: when the queue is full (the store is
/// slow or failing), entries are dropped and counted, not waited for.
///
/// A kill -9 loses what was queued since the last write: at most `flushEvery` of decisions,
/// and never more than `queueLimit` entries. SQLite's WAL keeps the file whole.
public final class DecisionJournal: @unchecked Sendable {
    public struct Settings: Sendable, Equatable {
        public var maxAge: TimeInterval
        public var maxEntries: Int
        public var flushEvery: TimeInterval
        public var batchLimit: Int
        public var queueLimit: Int
        public init(maxAge: TimeInterval = 7 * 86_400, maxEntries: Int = 1_000_000, flushEvery: TimeInterval = 0.1,
                    batchLimit: Int = 2048, queueLimit: Int = 16_384) {
            self.maxAge = maxAge
            self.maxEntries = maxEntries
            self.flushEvery = flushEvery
            self.batchLimit = batchLimit
            self.queueLimit = queueLimit
        }
    }

    struct Pending {
        var time: Date
        var request: BootRequest
        var datagram: [UInt8]?
        var decision: BootDecision?
        var steps: [PolicyStep]
        var version: String
    }

    public let store: JournalStore
    public let settings: Settings
    private let logger: Logger
    /// The reply a decision makes, in lines (Host knows how DHCP replies are built).
    private let describeReply: @Sendable (BootRequest, BootDecision?) -> [String]
    private let cond = NSCondition()
    private var pending: [Pending] = []
    private var stopping = false
    private var flushWanted = false
    private var written: UInt64 = 0
    private var queued: UInt64 = 0
    private var started = false
    private let done = DispatchSemaphore(value: 0)
    private let appended = Counter(label: "bootpolicy_journal_entries_total")
    private let dropped = Counter(label: "bootpolicy_journal_dropped_total")
    private let pruned = Counter(label: "bootpolicy_journal_pruned_total")
    private let failures = Counter(label: "bootpolicy_journal_write_failures_total")

    public init(store: JournalStore, settings: Settings = Settings(), logger: Logger,
                describeReply: @escaping @Sendable (BootRequest, BootDecision?) -> [String] = DecisionJournal.reply) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.describeReply = describeReply
    }

    public func start() {
        let t = Thread { [self] in
            clinux_name_thread("bp-journal")
            run()
        }
        started = true
        t.start()
    }

    /// Queues one decision; never waits. False when the queue was full and it was dropped.
    @discardableResult
    public func record(_ request: BootRequest, datagram: [UInt8]?, decision: BootDecision?, steps: [PolicyStep], version: String) -> Bool {
        let entry = Pending(time: Date(), request: request, datagram: datagram, decision: decision, steps: steps, version: version)
        cond.lock()
        guard pending.count < settings.queueLimit, !stopping else {
            cond.unlock()
            dropped.increment()
            return false
        }
        pending.append(entry)
        queued += 1
        if pending.count >= settings.batchLimit { cond.signal() }
        cond.unlock()
        return true
    }

    /// Writes what is queued now and waits for it (tests, `close`); false on timeout.
    @discardableResult
    public func flush(timeout: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        let target = queued
        while written < target {
            flushWanted = true
            cond.broadcast()
            if !cond.wait(until: deadline) { return written >= target }
        }
        return true
    }

    public func close(timeout: TimeInterval = 5) {
        cond.lock()
        stopping = true
        cond.broadcast()
        cond.unlock()
        if started { _ = done.wait(timeout: .now() + timeout) }
        store.close()
    }

    private func run() {
        var lastPrune = Date.distantPast
        var failing = false
        // Entries in the store, as far as this thread knows: past the bound after a write, the
        // oldest go at once, so the store never holds more than the bound and one batch.
        var stored = (try? store.count()) ?? 0
        func prune(_ before: Date) {
            do {
                let n = try store.prune(before: before, keep: settings.maxEntries)
                if n > 0 { pruned.increment(by: n) }
                stored = max(0, stored - n)
            } catch {
                logger.warning("decision journal: pruning failed: \(error)", metadata: ["journal": "\(store.description)"])
            }
        }
        while true {
            cond.lock()
            let deadline = Date().addingTimeInterval(settings.flushEvery)
            while !stopping && !flushWanted && pending.count < settings.batchLimit {
                if !cond.wait(until: deadline) { break }
            }
            let batch = pending
            pending = []
            pending.reserveCapacity(min(settings.batchLimit, batch.count))
            flushWanted = false
            let stop = stopping
            cond.unlock()

            if !batch.isEmpty {
                let entries = batch.map(entry)
                do {
                    try store.append(entries)
                    appended.increment(by: entries.count)
                    stored += entries.count
                    if failing { logger.notice("decision journal writes again", metadata: ["journal": "\(store.description)"]) }
                    failing = false
                } catch {
                    // Dropped, not retried: the journal is a record, and answers must not
                    // wait for it or grow its queue without bound.
                    failures.increment()
                    dropped.increment(by: entries.count)
                    if !failing {
                        logger.error("decision journal cannot write; \(entries.count) entries dropped: \(error)",
                                     metadata: ["journal": "\(store.description)"])
                    }
                    failing = true
                }
                if stored > settings.maxEntries { prune(.distantPast) }
                cond.lock()
                written += UInt64(batch.count)
                cond.broadcast()
                cond.unlock()
            }
            let now = Date()
            if now.timeIntervalSince(lastPrune) >= 1 || stop {
                lastPrune = now
                prune(now.addingTimeInterval(-settings.maxAge))
            }
            if stop { break }
        }
        done.signal()
    }

    private func entry(_ p: Pending) -> JournalEntry {
        let r = p.request
        var fixture: Fixture
        if r.kind == .dhcp, let bytes = p.datagram, let message = try? DHCPMessage(bytes: bytes) {
            fixture = Fixture(name: "journal", origin: nil, message: message, serverPort: r.serverPort,
                              source: r.clientAddress, interface: r.interface)
            fixture.decoded = nil
        } else {
            fixture = Fixture(name: "journal", origin: nil, kind: r.kind, mac: r.mac, source: r.clientAddress,
                              path: r.path ?? "", query: r.query.isEmpty ? nil : r.query)
            fixture.serverPort = r.serverPort
            fixture.interface = r.interface
        }
        return JournalEntry(
            id: nil, time: p.time, mac: r.mac, kind: r.kind, summary: Self.summary(r), version: p.version,
            policy: p.decision?.policy, decision: p.decision,
            steps: p.steps.map { .init(policy: $0.policy, hook: $0.hook, outcome: $0.outcome.text, micros: Double($0.duration) / 1000) },
            reply: describeReply(r, p.decision), request: fixture)
    }

    /// What a decision has the server send, in short.
    public static func reply(_ r: BootRequest, _ d: BootDecision?) -> [String] {
        switch r.kind {
        case .dhcp:
            guard let d else { return ["none: no policy decided (silent)"] }
            if d.ignore { return ["none: ignore (silent)"] }
            var out: [String] = []
            var boot: [String] = []
            if let f = d.filename { boot.append("file \(f)") }
            if let n = d.nextServer { boot.append("next-server \(n)") }
            if let s = d.serverName { boot.append("sname \(s)") }
            if let a = d.address { boot.append("address \(a)") }
            out.append(boot.isEmpty ? "offer without a boot file" : boot.joined(separator: "  "))
            if !d.options.isEmpty { out.append("options " + d.options.keys.sorted().map(String.init).joined(separator: " ")) }
            if let s = d.ipxeScript { out.append("script \(s.utf8.count) bytes kept for the client") }
            return out
        case .tftp, .http:
            guard let d else { return ["the file \(r.path ?? "?") from the root"] }
            if let why = d.refuse { return ["refused: \(why)"] }
            if let c = d.content { return ["\(c.count) bytes generated\(d.contentType.map { " (\($0))" } ?? "")\(d.status.map { " status \($0)" } ?? "")"] }
            if let p = d.path { return ["the file \(p) from the root"] }
            return ["the file \(r.path ?? "?") from the root"]
        }
    }

    /// `DISCOVER x86_64-uefi uefi iPXE` / `GET /boot.ipxe`.
    static func summary(_ r: BootRequest) -> String {
        var parts: [String] = []
        switch r.kind {
        case .dhcp: parts.append(r.messageType ?? "DHCP")
        case .tftp: parts.append("RRQ \(r.path ?? "?")")
        case .http: parts.append("\(r.method ?? "GET") \(r.path ?? "?")")
        }
        if let arch = r.arch { parts.append(arch) }
        if r.firmware != .unknown { parts.append(r.firmware.rawValue) }
        if r.isIPXE { parts.append("iPXE") }
        if let u = r.userClass.first { parts.append("user-class \(u)") }
        if let relay = r.relay { parts.append("via \(relay.giaddr)") }
        return parts.joined(separator: " ")
    }
}

/// The journal in SQLite: its own file (`journal.path`, by default beside the state file), so
/// that its writes never hold the lock that state commits (and the answers behind them) wait
/// for. WAL with synchronous NORMAL: an entry survives a kill -9 of the server once written;
/// a power loss may take the last second.
public final class SQLiteJournalStore: JournalStore, @unchecked Sendable {
    public let path: String
    public var description: String { "sqlite:\(path)" }
    private let queue: DatabaseQueue
    private var closed = false
    private let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()
    private let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: decision") { db in
            try db.execute(sql: """
                CREATE TABLE decision (
                    id INTEGER PRIMARY KEY,
                    time REAL NOT NULL,
                    mac TEXT NOT NULL,
                    entry_json TEXT NOT NULL
                );
                CREATE INDEX decision_mac ON decision (mac, id);
                CREATE INDEX decision_time ON decision (time);
                """)
        }
        return m
    }

    /// `readOnly`: for `bootpolicy why` and `diff` beside a running server.
    public init(path: String, readOnly: Bool = false) throws(StateError) {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(2)
        config.label = "bootpolicy-journal"
        config.readonly = readOnly
        if !readOnly {
            config.journalMode = .wal
            config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        }
        do {
            if readOnly && !FileManager.default.fileExists(atPath: path) {
                throw StateError("decision journal \(path): no such file")
            }
            let created = !FileManager.default.fileExists(atPath: path)
            queue = try DatabaseQueue(path: path, configuration: config)
            if created { chmod(path, 0o600) }
            let migrator = Self.migrator
            if readOnly {
                let applied = try queue.read { db in try migrator.appliedIdentifiers(db) }
                guard applied.contains("v1: decision") else { throw StateError("decision journal \(path): not a bootpolicy decision journal") }
            } else {
                if try queue.read({ db in try migrator.hasBeenSuperseded(db) }) {
                    throw StateError("decision journal \(path) was written by a newer bootpolicy; move it aside to start a new one")
                }
                try migrator.migrate(queue)
            }
        } catch let error as StateError {
            throw error
        } catch let error as DatabaseError {
            throw StateError("decision journal \(path): \(error.message ?? "\(error.resultCode)")")
        } catch {
            throw StateError("decision journal \(path): \(error)")
        }
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        try? queue.close()
    }

    public func append(_ entries: [JournalEntry]) throws {
        try queue.write { db in
            let statement = try db.cachedStatement(sql: "INSERT INTO decision (time, mac, entry_json) VALUES (?, ?, ?)")
            for e in entries {
                let json = String(decoding: try encoder.encode(e), as: UTF8.self)
                try statement.execute(arguments: [e.time.timeIntervalSince1970, e.mac, json])
            }
        }
    }

    public func prune(before: Date, keep: Int) throws -> Int {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM decision WHERE time < ?", arguments: [before.timeIntervalSince1970])
            var n = db.changesCount
            // Ids only grow and only the oldest go, so the newest `keep` are the top ids.
            try db.execute(sql: "DELETE FROM decision WHERE id <= (SELECT MAX(id) FROM decision) - ?", arguments: [keep])
            n += db.changesCount
            return n
        }
    }

    public func entries(mac: String?, since: Date?, limit: Int) throws -> [JournalEntry] {
        try queue.read { db in
            var sql = "SELECT id, entry_json FROM decision"
            var clauses: [String] = []
            var args: [DatabaseValueConvertible] = []
            if let mac { clauses.append("mac = ?"); args.append(mac) }
            if let since { clauses.append("time >= ?"); args.append(since.timeIntervalSince1970) }
            if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
            sql += " ORDER BY id DESC LIMIT ?"
            args.append(max(0, limit))
            var out: [JournalEntry] = []
            for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)) {
                let text: String = row["entry_json"]
                guard var e = try? decoder.decode(JournalEntry.self, from: Data(text.utf8)) else { continue }
                e.id = row["id"]
                out.append(e)
            }
            return out.reversed()
        }
    }

    public func count() throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM decision") ?? 0 }
    }

    /// SQLite's own check of the file (the kill -9 test).
    public func integrityCheck() throws -> String {
        try queue.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "?" }
    }
}

/// The journal in memory (state in memory or PostgreSQL without `journal.path`): the newest
/// `maxEntries`, gone at restart.
public final class MemoryJournalStore: JournalStore, @unchecked Sendable {
    public var description: String { "memory" }
    private let lock = NSLock()
    private var ring: [JournalEntry] = []
    private var start = 0
    private var nextID: Int64 = 1
    private let capacity: Int

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public func append(_ entries: [JournalEntry]) throws {
        lock.lock()
        defer { lock.unlock() }
        for var e in entries {
            e.id = nextID
            nextID += 1
            if ring.count < capacity {
                ring.append(e)
            } else {
                ring[start] = e
                start = (start + 1) % capacity
            }
        }
    }

    private var ordered: [JournalEntry] { Array(ring[start...] + ring[..<start]) }

    public func prune(before: Date, keep: Int) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        if ring.count <= keep, let oldest = ring.isEmpty ? nil : ring[start], oldest.time >= before { return 0 }
        if ring.isEmpty { return 0 }
        let all = ordered
        let kept = all.filter { $0.time >= before }.suffix(keep)
        ring = Array(kept)
        start = 0
        return all.count - ring.count
    }

    public func entries(mac: String?, since: Date?, limit: Int) throws -> [JournalEntry] {
        lock.lock()
        defer { lock.unlock() }
        return Array(ordered.filter { (mac == nil || $0.mac == mac) && (since == nil || $0.time >= since!) }.suffix(max(0, limit)))
    }

    public func count() throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        return ring.count
    }

    public func close() {}
}
