import Clients
import Foundation
import Logging
import LuaBridge
import Protocols

/// From the configuration's `state:` section to the client directory `serve` runs with.
enum ClientSetup {
    static func stateLimits(from configuration: Configuration) throws -> StateLimits {
        let s = configuration.state
        guard s.ttl > 0 else { throw ConfigError("state.ttl must be a positive number of seconds (got \(s.ttl))") }
        guard s.maxClients >= 1 else { throw ConfigError("state.max_clients must be at least 1 (got \(s.maxClients))") }
        guard (64...(1 << 20)).contains(s.maxClientBytes) else {
            throw ConfigError("state.max_client_bytes must be between 64 and 1048576 (got \(s.maxClientBytes))")
        }
        return StateLimits(defaultTTL: s.ttl, maxClients: s.maxClients, maxClientBytes: s.maxClientBytes)
    }

    /// The directory, its durable store opened and loaded when the configuration names one.
    static func directory(from configuration: Configuration, logger: Logger) throws -> ClientDirectory {
        let limits = try stateLimits(from: configuration)
        guard let store = configuration.state.store, store != "memory" else {
            return ClientDirectory(stateLimits: limits, logger: logger)
        }
        if store.contains("://") {
            let backend = try PostgresStateBackend(url: store, logger: logger)
            return try ClientDirectory.open(backend: backend, stateLimits: limits, logger: logger)
        }
        guard let sync = SQLiteStateBackend.Sync(rawValue: configuration.state.sync) else {
            throw ConfigError("state.sync must be full or normal (got '\(configuration.state.sync)')")
        }
        let backend = try SQLiteStateBackend(path: store, sync: sync)
        return try ClientDirectory.open(backend: backend, stateLimits: limits, logger: logger)
    }
}

/// The decision journal a configuration asks for, and what feeds it.
enum JournalSetup {
    /// Nil when `journal.enabled` is false. The file: `journal.path`, else beside a SQLite
    /// state file (`state.db` -> `state.decisions.db`), else memory.
    static func journal(from configuration: Configuration, logger: Logger) throws -> DecisionJournal? {
        let j = configuration.journal
        guard j.enabled else { return nil }
        guard j.maxAge > 0, j.maxAge.isFinite else { throw ConfigError("journal.max_age must be a positive number of seconds (got \(j.maxAge))") }
        if let n = j.maxEntries, n < 1 { throw ConfigError("journal.max_entries must be at least 1 (got \(n))") }
        let path = self.path(for: configuration)
        let store: JournalStore
        if let path {
            store = try SQLiteJournalStore(path: path)
        } else {
            store = MemoryJournalStore(capacity: j.maxEntries ?? defaultMemoryEntries)
        }
        let settings = DecisionJournal.Settings(maxAge: j.maxAge, maxEntries: j.maxEntries ?? (path == nil ? defaultMemoryEntries : defaultFileEntries))
        return DecisionJournal(store: store, settings: settings, logger: logger)
    }

    static let defaultFileEntries = 200_000
    static let defaultMemoryEntries = 10_000

    /// The journal's SQLite file, or nil for memory.
    static func path(for configuration: Configuration) -> String? {
        if let p = configuration.journal.path { return p == "memory" ? nil : p }
        guard let store = configuration.state.store, store != "memory", !store.contains("://") else { return nil }
        return store.hasSuffix(".db") ? String(store.dropLast(3)) + ".decisions.db" : store + ".decisions.db"
    }
}

/// Hands each decision to the journal with the version of the chain that made it.
final class JournalRecorder: DecisionObserver, @unchecked Sendable {
    let journal: DecisionJournal
    let engine: PolicyEngine
    init(journal: DecisionJournal, engine: PolicyEngine) {
        self.journal = journal
        self.engine = engine
    }
    func decided(_ request: BootRequest, datagram: [UInt8]?, decision: BootDecision?, steps: [PolicyStep]) {
        journal.record(request, datagram: datagram, decision: decision, steps: steps, version: engine.chain.version)
    }
}
