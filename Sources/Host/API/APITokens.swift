import Foundation

/// The bearer tokens the control API accepts, read from `--api-tokens FILE` (config
/// `api.tokens`). One token a line: `<scope> <token> [name]`, scope `read` or `write`; blank
/// lines and `#` comments are skipped. A write token also reads.
///
/// The file is refused when others may read it (a token is a password), when a token is short
/// enough to guess (fewer than 16 characters) or appears twice. The name, or `line N` without
/// one, is who the write log says made a change.
struct APITokens: Sendable {
    enum Scope: String, Sendable { case read, write }

    struct Token: Sendable {
        var scope: Scope
        var secret: [UInt8]
        /// Who this token is in logs: its name, or "line N" of the file.
        var who: String
    }

    enum Failure: Error, Equatable {
        case missing
        case malformed
        case unknown
    }

    static let minimumLength = 16

    let path: String
    let tokens: [Token]

    init(path: String, tokens: [Token]) {
        self.path = path
        self.tokens = tokens
    }

    static func load(path: String) throws -> APITokens {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError("api tokens \(path): cannot read: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ConfigError("api tokens \(path): not a regular file") }
        if info.st_mode & S_IROTH != 0 || info.st_mode & S_IWOTH != 0 {
            let mode = String(info.st_mode & 0o777, radix: 8)
            throw ConfigError("api tokens \(path): others may read it (mode \(mode)); a token is a password: chmod 600 \(path)")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("api tokens \(path): cannot read: \(error.localizedDescription)")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws -> APITokens {
        var tokens: [Token] = []
        var seen: Set<[UInt8]> = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let at = "\(path):\(i + 1)"
            guard fields.count == 2 || fields.count == 3 else {
                throw ConfigError("\(at): expected `<read|write> <token> [name]`, got \(fields.count) fields")
            }
            guard let scope = Scope(rawValue: fields[0]) else {
                throw ConfigError("\(at): scope must be read or write, not '\(fields[0])'")
            }
            let secret = Array(fields[1].utf8)
            guard secret.count >= minimumLength else {
                throw ConfigError("\(at): token is \(secret.count) characters; at least \(minimumLength) (try `openssl rand -hex 32`)")
            }
            guard seen.insert(secret).inserted else { throw ConfigError("\(at): the same token appears twice") }
            tokens.append(Token(scope: scope, secret: secret, who: fields.count == 3 ? fields[2] : "line \(i + 1)"))
        }
        guard !tokens.isEmpty else { throw ConfigError("api tokens \(path): holds no token") }
        return APITokens(path: path, tokens: tokens)
    }

    /// The token an `Authorization: Bearer ...` header presents. Every token is compared, in
    /// time that depends on neither where the first difference is nor which token matches.
    func authenticate(_ header: String?) -> Result<Token, Failure> {
        guard let header, !header.isEmpty else { return .failure(.missing) }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { return .failure(.malformed) }
        let presented: [UInt8]
        switch parts[0].lowercased() {
        case "bearer":
            presented = Array(parts[1].trimmingCharacters(in: .whitespaces).utf8)
        case "basic":
            // A browser cannot send a bearer token; it sends the token as a Basic password
            // (any user name) for the status page.
            guard let decoded = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
                  let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return .failure(.malformed) }
            presented = Array(decoded[decoded.index(after: colon)...])
        default:
            return .failure(.malformed)
        }
        var match: Token?
        for token in tokens where Self.constantTimeEquals(presented, token.secret) {
            match = token
        }
        return match.map { .success($0) } ?? .failure(.unknown)
    }

    /// Compares every byte of the longer input whatever the contents; a length difference
    /// counts as a difference.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = max(a.count, b.count)
        var diff = UInt(a.count ^ b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= UInt(x ^ y)
        }
        return diff == 0
    }
}
