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

/// An entry as it is written: flat text and bytes, cheap to make on the journal's thread (the
/// decision's JSON is cached, most answers repeat); `JournalEntry` is made from it when read.
public struct JournalRecord: Sendable, Equatable {
    public var time: Date
    public var mac: String
    public var kind: BootRequest.Kind
    public var summary: String
    public var version: String
    public var policy: String?
    /// `BootDecision` as JSON; nil when no policy decided.
    public var decision: String?
    /// One line per step: policy, hook, outcome, microseconds, tab-separated.
    public var steps: String
    /// The reply's lines, newline-separated.
    public var reply: String
    /// DHCP: the datagram; TFTP and HTTP: the path, UTF-8.
    public var request: [UInt8]
    /// TFTP and HTTP: the query, `k=v` pairs joined by `&` (percent-encoded).
    public var query: String?
    public var source: String?
    public var interface: String?
    public var serverPort: Int?

    /// The entry it stands for, with the store's `id`.
    public func entry(id: Int64?) -> JournalEntry {
        var fixture: Fixture
        if kind == .dhcp, ObservedRequest.dhcpv6(request) != nil {
            fixture = Fixture(name: "journal", origin: nil, dhcpv6: request, serverPort: serverPort ?? 547, source: source, interface: interface)
        } else if kind == .dhcp, let message = try? DHCPMessage(bytes: request) {
            fixture = Fixture(name: "journal", origin: nil, message: message, serverPort: serverPort, source: source, interface: interface)
            fixture.decoded = nil
        } else {
            var q: [String: String] = [:]
            for pair in (query ?? "").split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                if kv.count == 2 { q[kv[0]] = kv[1] }
            }
            fixture = Fixture(name: "journal", origin: nil, kind: kind, mac: mac, source: source,
                              path: String(decoding: request, as: UTF8.self), query: q.isEmpty ? nil : q)
            fixture.serverPort = serverPort
            fixture.interface = interface
        }
        let steps = self.steps.split(separator: "\n").compactMap { line -> JournalEntry.Step? in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4 else { return nil }
            return .init(policy: f[0], hook: f[1], outcome: f[2], micros: Double(f[3]) ?? 0)
        }
        return JournalEntry(
            id: id, time: time, mac: mac, kind: kind, summary: summary, version: version, policy: policy,
            decision: decision.flatMap { try? JSONDecoder().decode(BootDecision.self, from: Data($0.utf8)) },
            steps: steps, reply: reply.isEmpty ? [] : reply.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
            request: fixture)
    }
}

/// Where journal entries are kept. One writer (the journal's thread); readers any time.
public protocol JournalStore: AnyObject, Sendable {
    var description: String { get }
    /// Appends in one transaction, giving each entry the next id.
    func append(_ records: [JournalRecord]) throws
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
                    batchLimit: Int = 2048, queueLimit: Int = 8192) {
            self.maxAge = maxAge
            self.maxEntries = maxEntries
            self.flushEvery = flushEvery
            self.batchLimit = batchLimit
            self.queueLimit = queueLimit
        }
    }

    struct Pending {
        var time: Date
        var request: ObservedRequest
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
            // Below every thread that answers: its bursts (a batch encoded and written every
            // flushEvery) took a core from the DHCP threads, and p99 went from 0.15 ms to 1-2 ms
            // at 1,000-5,000 answers/s, at nice 19 too. SCHED_IDLE runs it only on a core
            // nothing else wants; on a saturated server its queue then fills and entries are
            // dropped (counted): answers come first.
            let refused = clinux_idle_priority()
            if refused != 0 { logger.debug("decision journal: SCHED_IDLE refused (errno \(refused))") }
            run()
        }
        started = true
        t.start()
    }

    /// Queues one decision; never waits. False when the queue was full and it was dropped.
    @discardableResult
    public func record(_ request: BootRequest, datagram: [UInt8]?, decision: BootDecision?, steps: [PolicyStep], version: String) -> Bool {
        let entry = Pending(time: Date(), request: ObservedRequest(request, datagram: datagram), decision: decision, steps: steps,
                            version: version)
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
        // Two arrays that take turns: the one handed over under the lock already has its
        // capacity, so neither side allocates while it holds the lock (this thread runs at idle
        // priority, and a live thread must never wait on it for long), and appends on the live
        // side do not grow an array.
        var batch: [Pending] = []
        batch.reserveCapacity(settings.queueLimit)
        cond.lock()
        pending.reserveCapacity(settings.queueLimit)
        cond.unlock()
        while true {
            batch.removeAll(keepingCapacity: true)
            cond.lock()
            let deadline = Date().addingTimeInterval(settings.flushEvery)
            while !stopping && !flushWanted && pending.count < settings.batchLimit {
                if !cond.wait(until: deadline) { break }
            }
            swap(&batch, &pending)
            flushWanted = false
            let stop = stopping
            cond.unlock()

            // At most `batchLimit` a transaction, pruned between: a batch that piled up while
            // the thread waited for a core never takes the store past the bound by more.
            var from = 0
            while from < batch.count {
                let upTo = min(batch.count, from + settings.batchLimit)
                let entries = batch[from..<upTo].map(record)
                from = upTo
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
            }
            if !batch.isEmpty {
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

    /// The last distinct answers, encoded: most requests get one of a few.
    private var encoded: [(kind: BootRequest.Kind, decision: BootDecision, json: String, reply: String)] = []
    private let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    private func record(_ p: Pending) -> JournalRecord {
        let r = p.request.rebuilt ?? BootRequest(kind: p.request.kind, mac: p.request.mac)
        var json: String?
        var reply: String
        if let d = p.decision {
            if let i = encoded.firstIndex(where: { $0.kind == r.kind && $0.decision == d }) {
                (json, reply) = (encoded[i].json, encoded[i].reply)
                if i > 0 { encoded.insert(encoded.remove(at: i), at: 0) }
            } else {
                json = (try? encoder.encode(d)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                reply = describeReply(r, d).joined(separator: "\n")
                encoded.insert((r.kind, d, json!, reply), at: 0)
                if encoded.count > 16 { encoded.removeLast() }
            }
        } else {
            reply = describeReply(r, nil).joined(separator: "\n")
        }
        var steps = ""
        for s in p.steps {
            if !steps.isEmpty { steps += "\n" }
            var outcome = s.outcome.text
            if outcome.utf8.contains(where: { $0 == 0x09 || $0 == 0x0A }) {
                outcome = String(outcome.map { $0 == "\t" || $0 == "\n" ? " " : $0 })
            }
            steps += "\(s.policy)\t\(s.hook)\t\(outcome)\t\(Double(s.duration / 100) / 10)"
        }
        let request: [UInt8]
        var query: String?
        if r.kind == .dhcp {
            request = p.request.datagram ?? []
        } else {
            request = Array((r.path ?? "").utf8)
            if !r.query.isEmpty {
                query = r.query.sorted { $0.key < $1.key }.map { "\(Self.percent($0.key))=\(Self.percent($0.value))" }.joined(separator: "&")
            }
        }
        return JournalRecord(time: p.time, mac: r.mac, kind: r.kind, summary: Self.summary(r), version: p.version,
                             policy: p.decision?.policy, decision: json, steps: steps, reply: reply, request: request,
                             query: query, source: r.clientAddress, interface: r.interface, serverPort: r.serverPort)
    }

    static func percent(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:/"))) ?? s
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
/// a power loss may take the last second. One row per decision, in columns (no JSON but the
/// decision's own, which repeats and is encoded once).
public final class SQLiteJournalStore: JournalStore, @unchecked Sendable {
    public let path: String
    public var description: String { "sqlite:\(path)" }
    private let queue: DatabaseQueue
    private var closed = false

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: decision") { db in
            try db.execute(sql: """
                CREATE TABLE decision (
                    id INTEGER PRIMARY KEY,
                    time REAL NOT NULL,
                    mac TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    summary TEXT NOT NULL,
                    version TEXT NOT NULL,
                    policy TEXT,
                    decision_json TEXT,
                    steps TEXT NOT NULL,
                    reply TEXT NOT NULL,
                    request BLOB NOT NULL,
                    query TEXT,
                    source TEXT,
                    interface TEXT,
                    server_port INTEGER
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

    public func append(_ records: [JournalRecord]) throws {
        try queue.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT INTO decision (time, mac, kind, summary, version, policy, decision_json, steps, reply, request, query,
                                      source, interface, server_port)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for r in records {
                try statement.execute(arguments: [
                    r.time.timeIntervalSince1970, r.mac, r.kind.rawValue, r.summary, r.version, r.policy, r.decision, r.steps,
                    r.reply, Data(r.request), r.query, r.source, r.interface, r.serverPort,
                ])
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
            var sql = "SELECT * FROM decision"
            var clauses: [String] = []
            var args: [DatabaseValueConvertible] = []
            if let mac { clauses.append("mac = ?"); args.append(mac) }
            if let since { clauses.append("time >= ?"); args.append(since.timeIntervalSince1970) }
            if !clauses.isEmpty { sql += " WHERE " + clauses.joined(separator: " AND ") }
            sql += " ORDER BY id DESC LIMIT ?"
            args.append(max(0, limit))
            var out: [JournalEntry] = []
            for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)) {
                guard let kind = BootRequest.Kind(rawValue: row["kind"]) else { continue }
                let request: Data = row["request"] ?? Data()
                let record = JournalRecord(
                    time: Date(timeIntervalSince1970: row["time"]), mac: row["mac"], kind: kind, summary: row["summary"],
                    version: row["version"], policy: row["policy"], decision: row["decision_json"], steps: row["steps"],
                    reply: row["reply"], request: Array(request), query: row["query"], source: row["source"],
                    interface: row["interface"], serverPort: row["server_port"])
                out.append(record.entry(id: row["id"]))
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
/// `capacity`, gone at restart.
public final class MemoryJournalStore: JournalStore, @unchecked Sendable {
    public var description: String { "memory" }
    private let lock = NSLock()
    private var ring: [(id: Int64, record: JournalRecord)] = []
    private var start = 0
    private var nextID: Int64 = 1
    private let capacity: Int

    public init(capacity: Int) { self.capacity = max(1, capacity) }

    public func append(_ records: [JournalRecord]) throws {
        lock.lock()
        defer { lock.unlock() }
        for r in records {
            let e = (nextID, r)
            nextID += 1
            if ring.count < capacity {
                ring.append(e)
            } else {
                ring[start] = e
                start = (start + 1) % capacity
            }
        }
    }

    private var ordered: [(id: Int64, record: JournalRecord)] { Array(ring[start...] + ring[..<start]) }

    public func prune(before: Date, keep: Int) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        if ring.isEmpty || (ring.count <= keep && ring[start].record.time >= before) { return 0 }
        let all = ordered
        ring = Array(all.filter { $0.record.time >= before }.suffix(keep))
        start = 0
        return all.count - ring.count
    }

    public func entries(mac: String?, since: Date?, limit: Int) throws -> [JournalEntry] {
        lock.lock()
        let chosen = ordered.filter { (mac == nil || $0.record.mac == mac) && (since == nil || $0.record.time >= since!) }.suffix(max(0, limit))
        lock.unlock()
        return chosen.map { $0.record.entry(id: $0.id) }
    }

    public func count() throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        return ring.count
    }

    public func close() {}
}
