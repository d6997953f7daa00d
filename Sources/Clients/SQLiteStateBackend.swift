import CLinux
import Foundation
import GRDB
import Protocols
#if canImport(Glibc)
import Glibc
#endif

/// Client memory in an embedded SQLite database (GRDB), in WAL mode: the default durable store.
///
/// One server per file: a lock file beside the database (`PATH.lock`, flock) refuses a second
/// `bootpolicy serve` on the same file, whose in-memory view would silently diverge from the
/// first's (several servers share state through PostgreSQL instead).
///
/// `sync` is SQLite's `synchronous`: `full` syncs the WAL at every commit (a commit survives a
/// power loss), `normal` only at checkpoints (a commit survives a crash or kill -9 of the
/// process, not a power loss). Commits are grouped by `StateWriter`, so either way one sync
/// covers every change queued meanwhile.
public final class SQLiteStateBackend: StateBackend, @unchecked Sendable {
    public enum Sync: String, Sendable, CaseIterable { case full, normal }

    public let path: String
    public var description: String { "sqlite:\(path)" }
    /// GRDB runs a write on the calling thread (its queue is entered synchronously).
    public var callerMayCommit: Bool { true }
    private let queue: DatabaseQueue
    /// A second connection that copies the WAL into the database, on a thread of its own.
    private let checkpointer: DatabaseQueue
    private let checkpointStop = DispatchSemaphore(value: 0)
    private let checkpointDone = DispatchSemaphore(value: 0)
    private let lockFD: Int32
    private var closed = false
    /// How often the WAL is copied into the database.
    static let checkpointEvery: TimeInterval = 0.5

    /// The schema, as migrations applied in order and recorded in the file. A file whose
    /// record names a migration this build does not know was written by a newer bootpolicy.
    /// No index on `expires`: every write would pay for it, and the sweep that would use it
    /// runs once a minute over at most `state.max_clients` rows.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: client_state, client_script") { db in
            try db.execute(sql: """
                CREATE TABLE client_state (
                    mac TEXT PRIMARY KEY NOT NULL,
                    value_json TEXT NOT NULL,
                    expires REAL NOT NULL,
                    updated REAL NOT NULL
                );
                CREATE TABLE client_script (
                    mac TEXT PRIMARY KEY NOT NULL,
                    filename TEXT,
                    script TEXT NOT NULL,
                    policy TEXT,
                    stored REAL NOT NULL
                );
                """)
        }
        // The address is the key: one row per address is what makes "never two clients on
        // one address" a property of the table, not only of the pool in memory.
        m.registerMigration("v2: dhcp_lease") { db in
            try db.execute(sql: """
                CREATE TABLE dhcp_lease (
                    address TEXT PRIMARY KEY NOT NULL,
                    client_id TEXT NOT NULL,
                    mac TEXT NOT NULL,
                    hostname TEXT,
                    expires REAL NOT NULL,
                    state TEXT NOT NULL,
                    updated REAL NOT NULL
                );
                """)
        }
        return m
    }

    /// Opens (creating when absent) the database at `path`. Every failure is a `StateError`
    /// that names the file and says what to do.
    public init(path: String, sync: Sync = .full) throws(StateError) {
        self.path = path
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            } catch {
                throw StateError("state store \(path): cannot create its directory \(dir): \(error.localizedDescription)")
            }
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw StateError("state store \(path): is a directory; give a file path such as \(path)/state.db")
        }
        lockFD = try Self.takeLock(path + ".lock", for: path)
        var config = Configuration()
        config.journalMode = .wal
        // A busy file here means something outside bootpolicy holds it (the lock file keeps
        // other servers out): wait a little, then fail with a clear error rather than hang.
        config.busyMode = .timeout(2)
        config.label = "bootpolicy-state"
        let synchronous = sync == .full ? "FULL" : "NORMAL"
        // No checkpoint in the commit path: SQLite's automatic one (every 1,000 WAL pages) ran
        // inside a commit, and every answer waiting for that commit waited milliseconds longer
        // (p99 at 1,000 answers/s was 2.5-5 ms). The checkpointer connection does it instead.
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous); PRAGMA wal_autocheckpoint = 0")
        }
        var checkpointConfig = config
        checkpointConfig.label = "bootpolicy-state-checkpoint"
        let migrator = Self.migrator
        do {
            let created = !FileManager.default.fileExists(atPath: path)
            queue = try DatabaseQueue(path: path, configuration: config)
            if created { chmod(path, 0o600) }
            let superseded = try queue.read { db in try migrator.hasBeenSuperseded(db) }
            if superseded {
                let applied = (try? queue.read { db in try migrator.appliedIdentifiers(db) }) ?? []
                let known = Set(migrator.migrations)
                let unknown = applied.subtracting(known).sorted().joined(separator: ", ")
                throw StateError("state store \(path) was written by a newer bootpolicy (schema \(unknown)); refusing to open it. Run that version, or move the file aside to start empty")
            }
            try migrator.migrate(queue)
            checkpointer = try DatabaseQueue(path: path, configuration: checkpointConfig)
        } catch let error as StateError {
            Self.releaseLock(lockFD)
            throw error
        } catch let error as DatabaseError {
            Self.releaseLock(lockFD)
            switch error.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT:
                throw StateError("state store \(path): not a usable SQLite database (\(error.message ?? "\(error.resultCode)")); move it aside to start empty, or restore it from a backup")
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                throw StateError("state store \(path): locked by another process (\(error.message ?? "busy")); stop it, or give another --state")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY:
                throw StateError("state store \(path): cannot open for writing (\(error.message ?? "\(error.resultCode)")); check the path and its permissions")
            default:
                throw StateError("state store \(path): \(error.message ?? "\(error)")")
            }
        } catch {
            Self.releaseLock(lockFD)
            throw StateError("state store \(path): \(error)")
        }
        startCheckpointing()
    }

    deinit { close() }

    /// Starts the checkpointer thread: every `checkpointEvery`, a PASSIVE checkpoint, which
    /// copies what it can without waiting for the writer and never blocks its commits.
    private func startCheckpointing() {
        let thread = Thread { [checkpointer, checkpointStop, checkpointDone] in
            clinux_name_thread("bp-state-ckpt")
            while checkpointStop.wait(timeout: .now() + SQLiteStateBackend.checkpointEvery) == .timedOut {
                try? checkpointer.writeWithoutTransaction { try $0.checkpoint(.passive) }
            }
            checkpointDone.signal()
        }
        thread.start()
    }

    /// Closes the database and lets another server open the file. Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        checkpointStop.signal()
        _ = checkpointDone.wait(timeout: .now() + 5)
        try? checkpointer.close()
        try? queue.close()
        Self.releaseLock(lockFD)
    }

    static func takeLock(_ lockPath: String, for path: String) throws(StateError) -> Int32 {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StateError("state store \(path): cannot create its lock file \(lockPath): \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var holder = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &holder, holder.count, 0)
            Glibc.close(fd)
            let pid = n > 0 ? String(decoding: holder[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            throw StateError("state store \(path) is in use by another bootpolicy (pid \(pid)); one server per SQLite file (several servers share state through PostgreSQL)")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return fd
    }

    static func releaseLock(_ fd: Int32) {
        guard fd >= 0 else { return }
        Glibc.close(fd)  // closing drops the flock
    }

    public func load(now: Date) throws -> StoredClients {
        try queue.read { db in
            var out = StoredClients()
            let t = now.timeIntervalSince1970
            let states = try Row.fetchCursor(db, sql: "SELECT mac, value_json, expires FROM client_state WHERE expires > ?", arguments: [t])
            while let row = try states.next() {
                let mac: String = row["mac"]
                let json: String = row["value_json"]
                guard let values = StateJSON.decode(json) else { continue }
                out.states[mac] = ClientState(values: values, expires: Date(timeIntervalSince1970: row["expires"]))
            }
            let scripts = try Row.fetchCursor(db, sql: "SELECT mac, filename, script, policy, stored FROM client_script")
            while let row = try scripts.next() {
                out.scripts[row["mac"]] = StoredScript(filename: row["filename"], text: row["script"], policy: row["policy"],
                                                       stored: Date(timeIntervalSince1970: row["stored"]))
            }
            let leases = try Row.fetchCursor(db, sql: "SELECT address, client_id, mac, hostname, expires, state FROM dhcp_lease")
            while let row = try leases.next() {
                let text: String = row["address"]
                let stateText: String = row["state"]
                guard let state = Lease.State(rawValue: stateText) else { continue }
                guard let address = IPv4Address(text) else {
                    if let v6 = IPv6Address(text) {
                        out.leases6.append(Lease6(address: v6, client: row["client_id"], mac: row["mac"],
                                                  expires: Date(timeIntervalSince1970: row["expires"]), state: state))
                    }
                    continue
                }
                out.leases.append(Lease(address: address, client: row["client_id"], mac: row["mac"], hostname: row["hostname"],
                                        expires: Date(timeIntervalSince1970: row["expires"]), state: state))
            }
            return out
        }
    }

    public func commit(_ changes: [StateChange]) throws {
        try queue.inTransaction(.immediate) { db in
            let now = Date().timeIntervalSince1970
            // Prepared once per connection and reused: preparing each row's statement cost more
            // than writing it.
            let upsertState = try db.cachedStatement(sql: """
                INSERT INTO client_state (mac, value_json, expires, updated) VALUES (?, ?, ?, ?)
                ON CONFLICT(mac) DO UPDATE SET value_json = excluded.value_json, expires = excluded.expires, updated = excluded.updated
                """)
            let deleteState = try db.cachedStatement(sql: "DELETE FROM client_state WHERE mac = ?")
            let upsertScript = try db.cachedStatement(sql: """
                INSERT INTO client_script (mac, filename, script, policy, stored) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(mac) DO UPDATE SET filename = excluded.filename, script = excluded.script, policy = excluded.policy, stored = excluded.stored
                """)
            let upsertLease = try db.cachedStatement(sql: """
                INSERT INTO dhcp_lease (address, client_id, mac, hostname, expires, state, updated) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(address) DO UPDATE SET client_id = excluded.client_id, mac = excluded.mac, hostname = excluded.hostname,
                    expires = excluded.expires, state = excluded.state, updated = excluded.updated
                """)
            for change in changes {
                switch change {
                case .lease(let l):
                    // distantFuture (an infinite lease) is stored as the largest finite time.
                    try upsertLease.execute(arguments: [l.address.description, l.client, l.mac, l.hostname,
                                                        min(l.expires.timeIntervalSince1970, 1e15), l.state.rawValue, now])
                case .lease6(let l):
                    try upsertLease.execute(arguments: [l.address.description, l.client, l.mac, nil as String?,
                                                        min(l.expires.timeIntervalSince1970, 1e15), l.state.rawValue, now])
                case .state(let mac, let state):
                    try upsertState.execute(arguments: [mac, StateJSON.encode(state.values), state.expires.timeIntervalSince1970, now])
                case .clearState(let mac):
                    try deleteState.execute(arguments: [mac])
                case .script(let mac, let script):
                    try upsertScript.execute(arguments: [mac, script.filename, script.text, script.policy,
                                                         script.stored.timeIntervalSince1970])
                }
            }
            return .commit
        }
    }

    public func sweep(now: Date, scriptsBefore: Date) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM client_state WHERE expires <= ?", arguments: [now.timeIntervalSince1970])
            try db.execute(sql: "DELETE FROM client_script WHERE stored < ?", arguments: [scriptsBefore.timeIntervalSince1970])
            // Kept a day past expiry: a client back within it is offered its old address.
            try db.execute(sql: "DELETE FROM dhcp_lease WHERE expires <= ?", arguments: [now.timeIntervalSince1970 - 86_400])
        }
    }
}

/// A client's state as a JSON object of strings, numbers and booleans: readable with
/// `sqlite3` or `jq`, and the shape the control API speaks.
///
/// Written and read by hand: a start loads every row (JSONDecoder took 6.9 s for 100,000
/// clients here), and the writer encodes every change. Integers are written without a point and
/// other numbers with one, so the type a policy stored is the type it reads back.
public enum StateJSON {
    public static func encode(_ values: [String: StateValue]) -> String {
        var out = "{"
        for (i, key) in values.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            JSONString.append(key, to: &out)
            out += ":"
            switch values[key]! {
            case .string(let s): JSONString.append(s, to: &out)
            case .integer(let n): out += String(n)
            case .number(let d):
                // Finite (the store refuses others); "\(d)" gives 1.0, 1e+20, 0.1: all JSON.
                out += "\(d)"
            case .bool(let b): out += b ? "true" : "false"
            }
        }
        return out + "}"
    }

    /// nil when the text is not an object of flat values (a row edited by hand, say).
    public static func decode(_ json: String) -> [String: StateValue]? {
        var json = json
        return json.withUTF8 { bytes -> [String: StateValue]? in
            var p = Parser(bytes: bytes)
            return p.object()
        }
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        mutating func eat(_ c: UInt8) -> Bool {
            skipSpace()
            guard at < bytes.count, bytes[at] == c else { return false }
            at += 1
            return true
        }

        mutating func object() -> [String: StateValue]? {
            guard eat(UInt8(ascii: "{")) else { return nil }
            var out: [String: StateValue] = [:]
            if eat(UInt8(ascii: "}")) { return end(out) }
            repeat {
                skipSpace()
                guard let key = string(), eat(UInt8(ascii: ":")), let value = value() else { return nil }
                out[key] = value
            } while eat(UInt8(ascii: ","))
            guard eat(UInt8(ascii: "}")) else { return nil }
            return end(out)
        }

        mutating func end(_ out: [String: StateValue]) -> [String: StateValue]? {
            skipSpace()
            return at == bytes.count ? out : nil
        }

        mutating func value() -> StateValue? {
            skipSpace()
            guard at < bytes.count else { return nil }
            switch bytes[at] {
            case UInt8(ascii: "\""): return string().map(StateValue.string)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            default: return number()
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard at + n <= bytes.count else { return false }
            for i in 0..<n where bytes[at + i] != word.utf8Start[i] { return false }
            at += n
            return true
        }

        mutating func number() -> StateValue? {
            let start = at
            var integral = true
            while at < bytes.count {
                let c = bytes[at]
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { integral = false }
                else if !(c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)) { break }
                at += 1
            }
            guard at > start else { return nil }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
            if integral, let i = Int(text) { return .integer(i) }
            guard let d = Double(text), d.isFinite else { return nil }
            return .number(d)
        }

        mutating func string() -> String? {
            guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { return nil }
            at += 1
            var out: [UInt8] = []
            while at < bytes.count {
                let c = bytes[at]
                at += 1
                switch c {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard at < bytes.count else { return nil }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        // A surrogate pair spells one scalar beyond the BMP.
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard literal("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default: return nil
                    }
                default: out.append(c)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard at + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                guard let d = Character(Unicode.Scalar(bytes[at])).hexDigitValue else { return nil }
                v = v << 4 | UInt32(d)
                at += 1
            }
            return v
        }
    }
}
