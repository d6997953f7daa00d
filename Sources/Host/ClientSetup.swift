import Clients
import Foundation
import Logging

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
