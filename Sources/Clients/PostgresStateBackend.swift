import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO
import Protocols

/// Client memory in PostgreSQL, for several servers that must agree on every machine's state:
/// `--state postgres://user[:password]@host[:port]/database`.
///
/// The same semantics as SQLite: schema migrations, one transaction per group commit, durable
/// at COMMIT. What is new is the change feed:
/// - every commit also sends `NOTIFY bootpolicy_state` (in the transaction, so it is delivered
///   only if the commit happens) naming this server and the MACs it changed;
/// - each server listens on a second connection, re-reads the rows other servers changed and
///   hands them to its store (`StateFollower`). Each (re)connection of the listener begins with
///   a full read, so changes made while it was away are not missed.
///
/// Reads on the DHCP path never touch the database: they come from each server's memory.
///
/// The writer thread calls `commit`, `sweep` and `probe` and blocks on their futures; it is
/// not an event loop, so that is allowed. The listener runs as a task on the same group.
public final class PostgresStateBackend: StateBackend, SharedLeaseStore, @unchecked Sendable {
    /// Where the database is, from the URL; `description` leaves the password out.
    public struct Location: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String?
        public var database: String

        public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

        public init(url text: String) throws(StateError) {
            guard let url = URLComponents(string: text), let scheme = url.scheme,
                  scheme == "postgres" || scheme == "postgresql" else {
                throw StateError("state store: '\(Self.redacted(text))' is not a postgres://user[:password]@host[:port]/database URL")
            }
            guard let host = url.host, !host.isEmpty else { throw StateError("state store \(Self.redacted(text)): no host") }
            guard let user = url.user, !user.isEmpty else {
                throw StateError("state store \(Self.redacted(text)): no user (postgres://USER@\(host)/database)")
            }
            let database = String(url.path.drop(while: { $0 == "/" }))
            guard !database.isEmpty, !database.contains("/") else {
                throw StateError("state store \(Self.redacted(text)): no database name (postgres://\(user)@\(host)/DATABASE)")
            }
            for item in url.queryItems ?? [] {
                guard item.name == "sslmode", item.value == "disable" else {
                    throw StateError("state store \(Self.redacted(text)): only ?sslmode=disable is understood (TLS to PostgreSQL is not built yet)")
                }
            }
            self.host = host
            self.port = url.port ?? 5432
            self.user = user.removingPercentEncoding ?? user
            self.password = url.password.map { $0.removingPercentEncoding ?? $0 }
            self.database = database.removingPercentEncoding ?? database
        }

        /// The URL with any password replaced, for error messages.
        static func redacted(_ text: String) -> String {
            guard var url = URLComponents(string: text), url.password != nil else { return text }
            url.password = "***"
            return url.string ?? "postgres://..."
        }
    }

    public let location: Location
    public var description: String { location.description }
    /// This server in NOTIFY payloads, so that it skips its own changes.
    let origin: String
    static let channel = "bootpolicy_state"
    /// Claims granted and lease rows committed: "origin address ..." (the lease feed between
    /// servers sharing a pool).
    static let leaseChannel = "bootpolicy_lease"
    /// A NOTIFY payload must stay under 8,000 bytes; MACs are sent in pieces below that.
    static let payloadLimit = 7_000
    static let connectTimeout: TimeAmount = .seconds(3)
    static let queryTimeout: TimeInterval = 5

    private let group: MultiThreadedEventLoopGroup
    /// Where this store's async work runs: its own event loop, never the cooperative pool.
    private let executor: EventLoopTaskExecutor
    private let logger: Logger
    private let lock = NIOLock()
    /// The writer's connection: commits, sweeps, probes and the initial load.
    private var connection: PostgresConnection?
    private var closed = false
    private var listener: Task<Void, Never>?
    private var leaseListeners: [Task<Void, Never>] = []
    private let connectionIDs = NIOLockedValueBox(0)

    /// Connects (at most `connectTimeout`), and creates or upgrades the schema.
    public init(url: String, logger: Logger) throws(StateError) {
        self.location = try Location(url: url)
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.group = group
        self.executor = EventLoopTaskExecutor(group.next())
        self.origin = "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try migrate()
        } catch {
            try? group.syncShutdownGracefully()
            throw StateError("state store \(location): \(Self.explain(error))")
        }
    }

    deinit { close() }

    // MARK: connections

    private func configuration() -> PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                 password: location.password, database: location.database, tls: .disable)
        c.options.connectTimeout = Self.connectTimeout
        return c
    }

    private func nextID() -> Int { connectionIDs.withLockedValue { $0 += 1; return $0 } }

    /// The writer's connection, made again when the last one died.
    private func writerConnection() throws -> PostgresConnection {
        if let c = lock.withLock({ connection }), !c.isClosed { return c }
        let c = try blocking { [self] in
            try await PostgresConnection.connect(on: group.next(), configuration: configuration(), id: nextID(), logger: quietLogger)
        }
        lock.withLock { connection = c }
        return c
    }

    /// PostgresNIO logs every failed query at error; the writer reports failures itself.
    private var quietLogger: Logger {
        var l = logger
        l.logLevel = .critical
        return l
    }

    /// Runs async work from a thread that is not an event loop (the writer's, or `init`'s),
    /// bounded by `queryTimeout` so a silent network never hangs a commit for ever.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        try blocking(closing: { [self] in lock.withLock { () -> PostgresConnection? in defer { connection = nil }; return connection } }, work)
    }

    /// The same; on a timeout the connection `stuck` returns is closed (it is of no further use).
    private func blocking<T: Sendable>(closing stuck: () -> PostgresConnection?, _ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<Result<T, Error>?>(nil)
        let task = Task(executorPreference: executor) {
            let r: Result<T, Error>
            do { r = .success(try await work()) } catch { r = .failure(error) }
            result.withLockedValue { $0 = r }
            done.signal()
        }
        if done.wait(timeout: .now() + Self.queryTimeout) == .timedOut {
            task.cancel()
            // A connection stuck mid-query is of no further use.
            try? stuck()?.close().wait()
            throw StateError("no answer from \(location) within \(Int(Self.queryTimeout)) s")
        }
        return try result.withLockedValue { $0! }.get()
    }

    /// Runs `body` on the writer's connection; a failure closes it, so the next call reconnects.
    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) throws -> T {
        let c = try writerConnection()
        do {
            return try blocking { try await body(c) }
        } catch {
            lock.withLock { if connection === c { connection = nil } }
            try? c.close().wait()
            throw StateError(Self.explain(error))
        }
    }

    /// A PostgreSQL error in one line: the server's message when it sent one.
    static func explain(_ error: Error) -> String {
        if let e = error as? StateError { return e.description }
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] {
                return "\(message)\(e.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")"
            }
            if e.code == .connectionError, let underlying = e.underlying { return "cannot connect: \(explainConnect(underlying))" }
            if let underlying = e.underlying { return "\(e.code): \(underlying)" }
            return "\(e.code)"
        }
        if let e = error as? PostgresTransactionError {
            if let inner = e.closureError ?? e.commitError ?? e.beginError { return explain(inner) }
        }
        return "\(error)"
    }

    /// "Connection refused" rather than NIO's nested connection-attempt dump.
    static func explainConnect(_ error: Error) -> String {
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return explainConnect(first.error) }
            if let dns = e.dnsAAAAError ?? e.dnsAError { return "cannot resolve \(e.host): \(dns)" }
            return "no address for \(e.host)"
        }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        if error is ChannelError, "\(error)".contains("connectTimeout") { return "no answer within \(connectTimeout)" }
        return "\(error)"
    }

    // MARK: schema

    /// Migrations in order, each recorded in `bootpolicy_schema`; two servers starting at once
    /// take an advisory lock so one applies them and the other sees them applied.
    static let migrations: [(id: String, sql: [String])] = [
        ("v1: client_state, client_script", [
            """
            CREATE TABLE client_state (
                mac TEXT PRIMARY KEY NOT NULL,
                value_json TEXT NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                updated DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE client_script (
                mac TEXT PRIMARY KEY NOT NULL,
                filename TEXT,
                script TEXT NOT NULL,
                policy TEXT,
                stored DOUBLE PRECISION NOT NULL
            )
            """,
        ]),
        // One row per address: the primary key is what makes two servers unable to lease one
        // address to two clients (see `claim`).
        ("v2: dhcp_lease", [
            """
            CREATE TABLE dhcp_lease (
                address TEXT PRIMARY KEY NOT NULL,
                client_id TEXT NOT NULL,
                mac TEXT NOT NULL,
                hostname TEXT,
                expires DOUBLE PRECISION NOT NULL,
                state TEXT NOT NULL,
                updated DOUBLE PRECISION NOT NULL
            )
            """,
        ]),
    ]
    /// pg_advisory_xact_lock's key for migrations ("bootpol" in ASCII).
    static let migrationLock: Int64 = 0x626F_6F74_706F_6C

    private func migrate() throws {
        let logger = quietLogger
        let known = Self.migrations.map(\.id)
        try withConnection { c in
            try await c.withTransaction(logger: logger) { tx in
                try await tx.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
                try await tx.query("CREATE TABLE IF NOT EXISTS bootpolicy_schema (id TEXT PRIMARY KEY NOT NULL, applied DOUBLE PRECISION NOT NULL)",
                                   logger: logger)
                var applied: Set<String> = []
                for try await id in try await tx.query("SELECT id FROM bootpolicy_schema", logger: logger).decode(String.self) {
                    applied.insert(id)
                }
                let unknown = applied.subtracting(known)
                if !unknown.isEmpty {
                    throw StateError("was written by a newer bootpolicy (schema \(unknown.sorted().joined(separator: ", "))); refusing to use it")
                }
                for migration in Self.migrations where !applied.contains(migration.id) {
                    for sql in migration.sql { try await tx.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                    let now = Date().timeIntervalSince1970
                    try await tx.query("INSERT INTO bootpolicy_schema (id, applied) VALUES (\(migration.id), \(now))", logger: logger)
                }
            }
        }
    }

    // MARK: StateBackend

    public func load(now: Date) throws -> StoredClients {
        let logger = quietLogger
        let states = try liveStates(now: now)
        let scripts = try withConnection { c in
            var out: [String: StoredScript] = [:]
            let rows = try await c.query("SELECT mac, filename, script, policy, stored FROM client_script", logger: logger)
            for try await (mac, filename, script, policy, stored) in rows.decode((String, String?, String, String?, Double).self) {
                out[mac] = StoredScript(filename: filename, text: script, policy: policy, stored: Date(timeIntervalSince1970: stored))
            }
            return out
        }
        let leases = try withConnection { c in try await Self.leases(on: c, addresses: nil, logger: logger) }
        var stored = StoredClients(states: states, scripts: scripts, leases: leases)
        stored.leases6 = try withConnection { c in try await Self.leases6(on: c, logger: logger) }
        return stored
    }

    /// Every live state row (the load at start; the follower's resync uses its own connection).
    private func liveStates(now: Date) throws -> [String: ClientState] {
        let logger = quietLogger
        return try withConnection { c in try await Self.liveStates(on: c, now: now, logger: logger) }
    }

    static func liveStates(on c: PostgresConnection, now: Date, logger: Logger) async throws -> [String: ClientState] {
        var out: [String: ClientState] = [:]
        let t = now.timeIntervalSince1970
        let rows = try await c.query("SELECT mac, value_json, expires FROM client_state WHERE expires > \(t)", logger: logger)
        for try await (mac, json, expires) in rows.decode((String, String, Double).self) {
            guard let values = StateJSON.decode(json) else { continue }
            out[mac] = ClientState(values: values, expires: Date(timeIntervalSince1970: expires))
        }
        return out
    }

    public func commit(_ changes: [StateChange]) throws {
        var upMACs: [String] = [], upJSON: [String] = [], upExpires: [Double] = []
        var cleared: [String] = []
        // Arrays of optionals do not bind: absent filenames and policies go as "" with a flag.
        var scMACs: [String] = [], scFiles: [String] = [], scTexts: [String] = [], scPolicies: [String] = [], scStored: [Double] = []
        var scHasFile: [Bool] = [], scHasPolicy: [Bool] = []
        var lAddr: [String] = [], lClient: [String] = [], lMAC: [String] = [], lHost: [String] = [], lHasHost: [Bool] = []
        var lExpires: [Double] = [], lState: [String] = []
        for change in changes {
            switch change {
            case .state(let mac, let state):
                upMACs.append(mac); upJSON.append(StateJSON.encode(state.values)); upExpires.append(state.expires.timeIntervalSince1970)
            case .clearState(let mac):
                cleared.append(mac)
            case .lease(let l):
                // Releases, quarantines and a client's old address let go (bound leases are
                // claimed, not queued). Conditional like a claim: a row another client holds
                // now is never overwritten.
                lAddr.append(l.address.description); lClient.append(l.client); lMAC.append(l.mac)
                lHost.append(l.hostname ?? ""); lHasHost.append(l.hostname != nil)
                lExpires.append(min(l.expires.timeIntervalSince1970, 1e15)); lState.append(l.state.rawValue)
            case .lease6(let l):
                lAddr.append(l.address.description); lClient.append(l.client); lMAC.append(l.mac)
                lHost.append(""); lHasHost.append(false)
                lExpires.append(min(l.expires.timeIntervalSince1970, 1e15)); lState.append(l.state.rawValue)
            case .script(let mac, let script):
                scMACs.append(mac); scFiles.append(script.filename ?? ""); scTexts.append(script.text)
                scPolicies.append(script.policy ?? ""); scStored.append(script.stored.timeIntervalSince1970)
                scHasFile.append(script.filename != nil); scHasPolicy.append(script.policy != nil)
            }
        }
        let payloads = Self.payloads(origin: origin, macs: upMACs + cleared)
        // Lease rows written here (releases, declines, SQLite-style records) go to the other
        // servers' lease feeds too, as claims do: a release through one server frees the
        // address in the others' memory.
        let leasePayloads = Self.payloads(origin: origin, macs: lAddr)
        let now = Date().timeIntervalSince1970
        let logger = quietLogger
        let (um, uj, ue, cl, sm, sf, st, sp, ss) = (upMACs, upJSON, upExpires, cleared, scMACs, scFiles, scTexts, scPolicies, scStored)
        let (hf, hp) = (scHasFile, scHasPolicy)
        let (la, lc, lm, lh, lhh, le, ls) = (lAddr, lClient, lMAC, lHost, lHasHost, lExpires, lState)
        let lp = leasePayloads
        // One statement for the upserts, the deletes, the scripts and the NOTIFYs (sent by
        // PostgreSQL at commit), inside BEGIN ... COMMIT: three round trips where a statement
        // each took up to six. Not the statement alone: in the extended protocol its implicit
        // transaction commits at the Sync after CommandComplete, so a driver that returns at
        // CommandComplete would let an answer leave before the commit is durable (a test that
        // kills the database under API writes lost one that way). COMMIT's own completion
        // comes after the commit. A client is never both upserted and deleted in one batch
        // (the writer keeps one change per client), so the CTEs touch disjoint rows.
        try withConnection { c in
            try await c.withTransaction(logger: logger) { tx in
                let rows = try await tx.query("""
                    WITH upserted AS (
                        INSERT INTO client_state (mac, value_json, expires, updated)
                        SELECT m, v, e, \(now) FROM UNNEST(\(um)::text[], \(uj)::text[], \(ue)::float8[]) AS t(m, v, e)
                        ON CONFLICT (mac) DO UPDATE SET value_json = excluded.value_json, expires = excluded.expires, updated = excluded.updated
                        RETURNING 1
                    ), deleted AS (
                        DELETE FROM client_state WHERE mac = ANY(\(cl)::text[]) RETURNING 1
                    ), scripts AS (
                        INSERT INTO client_script (mac, filename, script, policy, stored)
                        SELECT m, CASE WHEN hf THEN f END, x, CASE WHEN hp THEN p END, s
                        FROM UNNEST(\(sm)::text[], \(sf)::text[], \(hf)::bool[], \(st)::text[], \(sp)::text[], \(hp)::bool[], \(ss)::float8[])
                            AS t(m, f, hf, x, p, hp, s)
                        ON CONFLICT (mac) DO UPDATE SET filename = excluded.filename, script = excluded.script,
                            policy = excluded.policy, stored = excluded.stored
                        RETURNING 1
                    ), leases AS (
                        INSERT INTO dhcp_lease (address, client_id, mac, hostname, expires, state, updated)
                        SELECT a, c, m, CASE WHEN hh THEN h END, e, s, \(now)
                        FROM UNNEST(\(la)::text[], \(lc)::text[], \(lm)::text[], \(lh)::text[], \(lhh)::bool[], \(le)::float8[], \(ls)::text[])
                            AS t(a, c, m, h, hh, e, s)
                        ON CONFLICT (address) DO UPDATE SET client_id = excluded.client_id, mac = excluded.mac,
                            hostname = excluded.hostname, expires = excluded.expires, state = excluded.state, updated = excluded.updated
                        WHERE dhcp_lease.client_id = excluded.client_id OR dhcp_lease.state = 'released' OR dhcp_lease.expires <= \(now)
                        RETURNING 1
                    )
                    SELECT pg_notify(n.c, n.p) FROM (
                        SELECT \(Self.channel)::text AS c, p FROM UNNEST(\(payloads)::text[]) AS s(p)
                        UNION ALL SELECT \(Self.leaseChannel)::text, p FROM UNNEST(\(lp)::text[]) AS l(p)
                    ) AS n
                    """, logger: logger)
                for try await _ in rows {}
            }
        }
    }

    /// `origin mac mac ...` (or addresses), split so that no payload passes `payloadLimit`.
    static func payloads(origin: String, macs: [String]) -> [String] {
        var out: [String] = []
        var current = origin
        for mac in macs {
            if current.utf8.count + 1 + mac.utf8.count > payloadLimit {
                out.append(current)
                current = origin
            }
            current += " " + mac
        }
        if current != origin { out.append(current) }
        return out
    }

    public func sweep(now: Date, scriptsBefore: Date) throws {
        let logger = quietLogger
        let (t, s) = (now.timeIntervalSince1970, scriptsBefore.timeIntervalSince1970)
        try withConnection { c in
            try await c.query("DELETE FROM client_state WHERE expires <= \(t)", logger: logger)
            try await c.query("DELETE FROM client_script WHERE stored < \(s)", logger: logger)
        }
    }

    public func probe() throws {
        let logger = quietLogger
        try withConnection { c in try await c.query("SELECT 1", logger: logger) }
    }

    // MARK: leases shared between servers

    /// Claims run on a connection of their own (the writer's may be inside a transaction),
    /// one at a time.
    private let claimLock = NSLock()
    private var claimConnection: PostgresConnection?

    /// Grants `lease` if its address is free in the table or already this client's, in one
    /// conditional upsert on the primary key: `INSERT ... ON CONFLICT (address) DO UPDATE ...
    /// WHERE the row is this client's, released or expired`. PostgreSQL locks the row it
    /// conflicts on, so of two servers claiming one address for two clients at once, the second
    /// waits for the first, then finds the row held and updates nothing: it is told `held`.
    /// Committed (BEGIN ... COMMIT, for the reason `commit` gives) before it returns.
    public func claim(_ lease: Lease, now: Date) -> LeaseClaim {
        switch claimRow(address: lease.address.description, client: lease.client, mac: lease.mac, hostname: lease.hostname,
                        expires: lease.expires, now: now) {
        case .unavailable(let why): return .unavailable(why)
        case .granted: return .granted
        case .held(let row):
            // The statement's snapshot may predate the holder's commit: then it is unknown.
            let holder = row.flatMap { r in r.client != lease.client ? Lease(address: lease.address, client: r.client, mac: r.mac,
                                                                                 hostname: r.hostname, expires: r.expires, state: r.state) : nil }
            return .held(holder)
        }
    }

    /// The same claim for a DHCPv6 binding: one table, so a v4 and a v6 server, or two v6
    /// servers with overlapping ranges, are held to it alike.
    public func claim6(_ lease: Lease6, now: Date) -> Lease6Claim {
        switch claimRow(address: lease.address.description, client: lease.client, mac: lease.mac, hostname: nil,
                        expires: lease.expires, now: now) {
        case .unavailable(let why): return .unavailable(why)
        case .granted: return .granted
        case .held(let row):
            let holder = row.flatMap { r in r.client != lease.client ? Lease6(address: lease.address, client: r.client, mac: r.mac,
                                                                                  expires: r.expires, state: r.state) : nil }
            return .held(holder)
        }
    }

    /// A lease row as the claim read it.
    struct ClaimedRow {
        var client: String, mac: String, hostname: String?, expires: Date, state: Lease.State
    }
    enum ClaimOutcome { case granted, held(ClaimedRow?), unavailable(String) }

    /// The claim's statement (see `claim`), for either family; the error explained on failure.
    private func claimRow(address a: String, client c: String, mac m: String, hostname h: String?, expires: Date,
                          now: Date) -> ClaimOutcome {
        claimLock.lock()
        defer { claimLock.unlock() }
        let logger = quietLogger
        let (e, t) = (min(expires.timeIntervalSince1970, 1e15), now.timeIntervalSince1970)
        do {
            let connection: PostgresConnection
            if let open = claimConnection, !open.isClosed {
                connection = open
            } else {
                connection = try blocking(closing: { [self] in claimConnection }) { [self] in
                    try await PostgresConnection.connect(on: group.next(), configuration: configuration(), id: nextID(), logger: quietLogger)
                }
                claimConnection = connection
            }
            let outcome: (Bool, ClaimedRow?) = try blocking(closing: { [self] in claimConnection }) {
                try await connection.withTransaction(logger: logger) { tx in
                    let rows = try await tx.query("""
                        WITH claimed AS (
                            INSERT INTO dhcp_lease (address, client_id, mac, hostname, expires, state, updated)
                            VALUES (\(a), \(c), \(m), \(h), \(e), 'bound', \(t))
                            ON CONFLICT (address) DO UPDATE SET client_id = excluded.client_id, mac = excluded.mac,
                                hostname = excluded.hostname, expires = excluded.expires, state = 'bound', updated = excluded.updated
                            WHERE dhcp_lease.client_id = excluded.client_id OR dhcp_lease.state = 'released' OR dhcp_lease.expires <= \(t)
                            RETURNING 1
                        )
                        SELECT (SELECT count(*) FROM claimed)::int8, l.client_id, l.mac, l.hostname, l.expires, l.state
                        FROM (SELECT 1) AS one LEFT JOIN dhcp_lease l ON l.address = \(a)
                        """, logger: logger)
                    var granted = false
                    var holder: ClaimedRow?
                    for try await (n, client, mac, hostname, expires, state) in rows.decode((Int64, String?, String?, String?, Double?, String?).self) {
                        granted = n > 0
                        if let client, let mac, let expires, let state = state.flatMap(Lease.State.init(rawValue:)) {
                            holder = ClaimedRow(client: client, mac: mac, hostname: hostname,
                                                expires: Date(timeIntervalSince1970: expires), state: state)
                        }
                    }
                    // Delivered at COMMIT, to the other servers' lease feeds (`followLeases`).
                    if granted { try await tx.query("SELECT pg_notify(\(Self.leaseChannel), \(self.origin + " " + a))", logger: logger) }
                    return (granted, holder)
                }
            }
            return outcome.0 ? .granted : .held(outcome.1)
        } catch {
            if let open = claimConnection { try? open.close().wait() }
            claimConnection = nil
            return .unavailable(Self.explain(error))
        }
    }

    // MARK: change feed

    public func follow(_ follower: StateFollower) {
        let configuration = configuration()
        let group = group, logger = logger, quiet = quietLogger, origin = origin, location = location
        let id = nextID()
        let task = Task(executorPreference: executor) {
            var pause: UInt64 = 100_000_000
            var connected = false, lost = false
            while !Task.isCancelled {
                var open: PostgresConnection?
                do {
                    let c = try await PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: quiet)
                    open = c
                    try await c.listen(on: Self.channel) { notifications in
                        // Listening first, then the full read: a change committed between the
                        // two is both in the read and notified, never in neither.
                        follower.remoteResync(try await Self.liveStates(on: c, now: Date(), logger: quiet))
                        if !connected { follower.remoteFeed(connected: true, reason: nil) }
                        if lost { logger.notice("state store \(location): change feed back; writes accepted again", metadata: ["store": "\(location)"]) }
                        connected = true
                        lost = false
                        pause = 100_000_000
                        // One notification is one commit's MACs (a group commit's, often many).
                        for try await notification in notifications {
                            let macs = Self.macs(in: notification.payload, skipping: origin)
                            guard !macs.isEmpty else { continue }
                            follower.remoteChanged(try await Self.rows(on: c, macs: Array(macs), logger: quiet))
                        }
                    }
                    throw StateError("the listening connection ended")
                } catch {
                    try? await open?.close()
                    if Task.isCancelled { break }
                    if connected {
                        logger.error("state store \(location): lost the change feed (\(Self.explain(error))); writes are refused until it is back",
                                     metadata: ["store": "\(location)"])
                        follower.remoteFeed(connected: false, reason: Self.explain(error))
                        lost = true
                    }
                    connected = false
                    try? await Task.sleep(nanoseconds: pause)
                    pause = min(2_000_000_000, pause * 2)
                }
            }
        }
        lock.withLock { listener = task }
    }

    static func macs(in payload: String, skipping origin: String) -> Set<String> {
        let parts = payload.split(separator: " ")
        guard let from = parts.first, from != origin[...] else { return [] }
        return Set(parts.dropFirst().map(String.init))
    }

    /// The current rows of `macs`; nil for each that has none.
    static func rows(on c: PostgresConnection, macs: [String], logger: Logger) async throws -> [String: ClientState?] {
        var out: [String: ClientState?] = [:]
        for mac in macs { out[mac] = .some(nil) }
        let rows = try await c.query("SELECT mac, value_json, expires FROM client_state WHERE mac = ANY(\(macs)::text[])", logger: logger)
        for try await (mac, json, expires) in rows.decode((String, String, Double).self) {
            guard let values = StateJSON.decode(json) else { continue }
            out[mac] = ClientState(values: values, expires: Date(timeIntervalSince1970: expires))
        }
        return out
    }

    /// The leases other servers claim, as they commit them (and every row at each
    /// (re)connection), so this server's pool offers what is free in the table rather than
    /// learning of another's lease from a collision. Only an optimisation: the claim decides.
    public func followLeases(_ apply: @escaping @Sendable ([Lease]) -> Void) {
        followLeaseFeed(family: "dhcpv4", isFamily: { !$0.contains(":") },
                        read: { c, addresses, logger in try await Self.leases(on: c, addresses: addresses, logger: logger) },
                        apply: apply)
    }

    /// The same feed for DHCPv6 bindings (one table and one channel; a listener of its own,
    /// which reads only the rows of its family).
    public func followLeases6(_ apply: @escaping @Sendable ([Lease6]) -> Void) {
        followLeaseFeed(family: "dhcpv6", isFamily: { $0.contains(":") },
                        read: { c, addresses, logger in try await Self.leases6(on: c, addresses: addresses, logger: logger) },
                        apply: apply)
    }

    /// Listens on the lease channel; at each (re)connection hands `apply` every row of the
    /// family, then the rows each notification names (other servers' claims, in that family).
    private func followLeaseFeed<L: Sendable>(family: String, isFamily: @escaping @Sendable (String) -> Bool,
                                              read: @escaping @Sendable (PostgresConnection, [String]?, Logger) async throws -> [L],
                                              apply: @escaping @Sendable ([L]) -> Void) {
        let configuration = configuration()
        let group = group, quiet = quietLogger, origin = origin
        let id = nextID()
        let task = Task(executorPreference: executor) {
            var pause: UInt64 = 100_000_000
            while !Task.isCancelled {
                var open: PostgresConnection?
                do {
                    let c = try await PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: quiet)
                    open = c
                    try await c.listen(on: Self.leaseChannel) { notifications in
                        apply(try await read(c, nil, quiet))
                        pause = 100_000_000
                        for try await notification in notifications {
                            let addresses = Self.macs(in: notification.payload, skipping: origin).filter(isFamily)
                            guard !addresses.isEmpty else { continue }
                            apply(try await read(c, Array(addresses), quiet))
                        }
                    }
                    throw StateError("the \(family) lease feed's connection ended")
                } catch {
                    try? await open?.close()
                    if Task.isCancelled { break }
                    try? await Task.sleep(nanoseconds: pause)
                    pause = min(2_000_000_000, pause * 2)
                }
            }
        }
        lock.withLock { leaseListeners.append(task) }
    }

    /// The rows of `addresses` (nil: every row).
    static func leases(on c: PostgresConnection, addresses: [String]?, logger: Logger) async throws -> [Lease] {
        let rows = try await c.query("""
            SELECT address, client_id, mac, hostname, expires, state FROM dhcp_lease
            WHERE \(addresses == nil) OR address = ANY(\(addresses ?? [])::text[])
            """, logger: logger)
        var out: [Lease] = []
        for try await (address, client, mac, hostname, expires, state) in rows.decode((String, String, String, String?, Double, String).self) {
            guard let a = IPv4Address(address), let s = Lease.State(rawValue: state) else { continue }
            out.append(Lease(address: a, client: client, mac: mac, hostname: hostname,
                             expires: expires >= 1e15 ? .distantFuture : Date(timeIntervalSince1970: expires), state: s))
        }
        return out
    }

    /// The DHCPv6 rows of `addresses` (nil: every one; their addresses are IPv6 text).
    static func leases6(on c: PostgresConnection, addresses: [String]? = nil, logger: Logger) async throws -> [Lease6] {
        let rows = try await c.query("""
            SELECT address, client_id, mac, expires, state FROM dhcp_lease
            WHERE address LIKE '%:%' AND (\(addresses == nil) OR address = ANY(\(addresses ?? [])::text[]))
            """, logger: logger)
        var out: [Lease6] = []
        for try await (address, client, mac, expires, state) in rows.decode((String, String, String, Double, String).self) {
            guard let a = IPv6Address(address), let s = Lease.State(rawValue: state) else { continue }
            out.append(Lease6(address: a, client: client, mac: mac,
                              expires: expires >= 1e15 ? .distantFuture : Date(timeIntervalSince1970: expires), state: s))
        }
        return out
    }

    public func close() {
        let (first, task, leaseTasks, c): (Bool, Task<Void, Never>?, [Task<Void, Never>], PostgresConnection?) = lock.withLock {
            defer { closed = true; listener = nil; leaseListeners = []; connection = nil }
            return (!closed, listener, leaseListeners, connection)
        }
        guard first else { return }
        task?.cancel()
        for t in leaseTasks { t.cancel() }
        if let claim = claimLock.withLock({ claimConnection }) { try? claim.close().wait() }
        try? c?.close().wait()
        try? group.syncShutdownGracefully()
    }
}
