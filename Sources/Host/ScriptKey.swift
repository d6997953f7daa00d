import Foundation
import Logging
import Protocols
#if canImport(Glibc)
import Glibc
#endif

/// Where `serve` gets the key its per-client script tokens are signed with
/// (`http.script_key`), and which `http.script_access` mode it runs.
///
/// The key must outlive a restart (a machine may fetch its script after the server came back)
/// and be the same on every server that shares one state database, so: the file named by
/// `http.script_key`, created if absent; else a file beside a SQLite state file; else, with
/// state in memory or in PostgreSQL and no file named, a key new each run (said in the log).
enum ScriptKey {
    struct Setup {
        var access: ScriptAccess
        var tokens: ScriptTokens
        /// The key's file, for the log ("" when the key is new this run).
        var origin: String
        /// Whether the key dies with the process.
        var ephemeral: Bool
    }

    static let minimumLength = 32

    static func setup(from configuration: Configuration, create: Bool = true) throws -> Setup {
        let mode = configuration.http.scriptAccess.lowercased()
        let path = configuration.http.scriptKey ?? defaultPath(for: configuration.state.store)
        var tokens = ScriptTokens.random()
        var origin = ""
        var ephemeral = true
        if let path, create || FileManager.default.fileExists(atPath: path) {
            try refuseServed(path, configuration)
            tokens = try load(path: path, create: create)
            origin = path
            ephemeral = false
        }
        let access: ScriptAccess
        switch mode {
        case "token": access = .token(tokens)
        case "neighbour", "neighbor": access = .neighbour
        case "open": access = .open
        default:
            throw ConfigError("http.script_access must be token, neighbour or open (got '\(configuration.http.scriptAccess)')")
        }
        return Setup(access: access, tokens: tokens, origin: origin, ephemeral: ephemeral)
    }

    /// A key inside a root the servers serve from would be handed to anyone who asks for it.
    static func refuseServed(_ path: String, _ configuration: Configuration) throws {
        func real(_ p: String) -> String {
            guard let r = realpath(p, nil) else { return URL(fileURLWithPath: p).standardizedFileURL.path }
            defer { free(r) }
            return String(cString: r)
        }
        let url = URL(fileURLWithPath: path)
        let file = real(url.deletingLastPathComponent().path) + "/" + url.lastPathComponent
        for (name, root) in [("tftp.root", configuration.tftp.root), ("http.root", configuration.http.root)] {
            guard let root else { continue }
            let top = real(root)
            if file.hasPrefix(top.hasSuffix("/") ? top : top + "/") {
                throw ConfigError("http.script_key \(path) is inside \(name) \(root): the servers would hand the key to anyone who asks for it; keep it elsewhere (beside the state file, say)")
            }
        }
    }

    /// `<state file>.script-key` beside a SQLite state file; nil for memory and PostgreSQL
    /// (several servers must be given one file to share).
    static func defaultPath(for store: String?) -> String? {
        guard let store, store != "memory", !store.contains("://") else { return nil }
        return store + ".script-key"
    }

    /// Reads the key (created with 32 random bytes, as hex, mode 600 if absent and `create`).
    /// Refused when others may read it or it is too short to be a key.
    static func load(path: String, create: Bool) throws -> ScriptTokens {
        if create && !FileManager.default.fileExists(atPath: path) {
            try make(path: path)
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError("http.script_key \(path): cannot read: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ConfigError("http.script_key \(path): not a regular file") }
        if info.st_mode & (S_IROTH | S_IWOTH) != 0 {
            let mode = String(info.st_mode & 0o777, radix: 8)
            throw ConfigError("http.script_key \(path): others may read it (mode \(mode)); whoever reads it can fetch any machine's script: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("http.script_key \(path): cannot read")
        }
        let key = Array(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard key.count >= minimumLength else {
            throw ConfigError("http.script_key \(path): \(key.count) characters; a key needs at least \(minimumLength) (delete the file and one is made: 64 hex digits)")
        }
        return ScriptTokens(key: key)
    }

    /// A new key file, written whole or not at all (O_EXCL: a second server starting at the
    /// same moment reads the first one's).
    private static func make(path: String) throws {
        // The system generator reads the kernel's CSPRNG (getrandom(2)).
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let text = Array((bytes.map { String(format: "%02x", $0) }.joined() + "\n").utf8)
        let temporary = path + ".new-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ConfigError("http.script_key \(path): cannot create: \(String(cString: strerror(errno)))")
        }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        defer { unlink(temporary) }
        guard written == text.count, synced else {
            throw ConfigError("http.script_key \(path): cannot write: \(String(cString: strerror(errno)))")
        }
        // link(2) fails if another process made the file first; then its key is the one.
        if link(temporary, path) != 0 && errno != EEXIST {
            throw ConfigError("http.script_key \(path): cannot create: \(String(cString: strerror(errno)))")
        }
    }
}
