import NIOHTTP1

/// One HTTP request as the boot server sees it: method, path without query, decoded query,
/// and the body (at most `HTTPServer.Configuration.maxBodyBytes`).
public struct HTTPRequestContext: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var clientAddress: String
    /// "https" on the TLS listener, else "http".
    public var scheme: String

    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders = [:], body: [UInt8] = [], clientAddress: String,
                scheme: String = "http") {
        self.method = method
        self.scheme = scheme
        self.headers = headers
        self.body = body
        self.clientAddress = clientAddress
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = String(parts.first ?? "").removingPercentEncodingOrSelf
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(kv[0]).replacingPlus.removingPercentEncodingOrSelf
                guard !key.isEmpty else { continue }
                query[key] = kv.count == 2 ? String(kv[1]).replacingPlus.removingPercentEncodingOrSelf : ""
            }
        }
        self.query = query
    }
}

/// What to send back: bytes in memory, or a file region streamed with sendfile.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        /// An open file from the static root; `range` is the raw Range header, applied when sending.
        case file(ConfinedFile, range: String?)
        /// The response is not known yet: see `HTTPResponse.later`.
        case later(Later)
    }

    /// Work that ends in a response without holding a thread while it waits (a control API
    /// write waiting for its commit). `start` gets a `complete` to call once, from any thread,
    /// with a function that makes the response; that function runs on the connection's event
    /// loop, so logging there costs the thread that finished the work nothing.
    public struct Later: Sendable {
        public let start: @Sendable (_ complete: @escaping @Sendable (@escaping @Sendable () -> HTTPResponse) -> Void) -> Void
    }

    /// A response that `start` completes later; status and type here are placeholders.
    public static func later(_ start: @escaping @Sendable (_ complete: @escaping @Sendable (@escaping @Sendable () -> HTTPResponse) -> Void) -> Void) -> HTTPResponse {
        HTTPResponse(status: .ok, contentType: "text/plain", body: .later(Later(start: start)))
    }

    public var status: HTTPResponseStatus
    public var contentType: String
    public var headers: [(String, String)]
    public var body: Body

    public init(status: HTTPResponseStatus, contentType: String, headers: [(String, String)] = [], body: Body) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    public static func text(status: HTTPResponseStatus = .ok, _ text: String, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, contentType: contentType, body: .bytes(Array(text.utf8)))
    }

    public static func file(_ file: ConfinedFile, range: String?) -> HTTPResponse {
        HTTPResponse(status: .ok, contentType: contentType(forPath: file.path), body: .file(file, range: range))
    }

    static func contentType(forPath path: String) -> String {
        switch path.split(separator: ".").last.map({ $0.lowercased() }) {
        case "ipxe", "txt", "cfg", "conf", "sh": return "text/plain; charset=utf-8"
        case "html", "htm": return "text/html; charset=utf-8"
        case "json": return "application/json"
        case "iso": return "application/x-iso9660-image"
        default: return "application/octet-stream"
        }
    }
}

/// RFC 9110 §14.1.2 byte ranges; only a single range is honoured (what boot loaders send).
/// Public for the HTTP fuzz target (Tests/Fuzz/HTTPFuzz).
public enum ByteRange: Equatable {
    case whole
    case partial(start: Int, end: Int)  // inclusive
    case unsatisfiable

    public init(header: String?, size: Int) {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { self = .whole; return }
        let spec = header.dropFirst("bytes=".count).trimmingSpaces
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { self = .whole; return }
        let first = parts[0].trimmingSpaces, last = parts[1].trimmingSpaces
        if first.isEmpty {
            // suffix range: the last N bytes
            guard let n = Int(last), n > 0 else { self = .unsatisfiable; return }
            self = size == 0 ? .unsatisfiable : .partial(start: max(0, size - n), end: size - 1)
            return
        }
        guard let start = Int(first), start >= 0 else { self = .whole; return }
        guard start < size else { self = .unsatisfiable; return }
        if last.isEmpty { self = .partial(start: start, end: size - 1); return }
        guard let end = Int(last), end >= start else { self = .whole; return }
        self = .partial(start: start, end: min(end, size - 1))
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

extension String {
    var replacingPlus: String { utf8.contains(UInt8(ascii: "+")) ? replacingOccurrences(of: "+", with: " ") : self }

    /// Foundation's `removingPercentEncoding`, or the string itself where that gives nil (a
    /// `%` without two hex digits, bytes that are not UTF-8), on the bytes: Foundation's goes
    /// through CFString and was a twentieth of a small HTTP request's CPU.
    var removingPercentEncodingOrSelf: String {
        let percent = UInt8(ascii: "%")
        guard utf8.contains(percent) else { return self }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        let source = Array(utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(source.count)
        var i = 0
        while i < source.count {
            guard source[i] == percent else { bytes.append(source[i]); i += 1; continue }
            guard i + 2 < source.count, let high = hex(source[i + 1]), let low = hex(source[i + 2]) else { return self }
            bytes.append(high << 4 | low)
            i += 3
        }
        return String(validating: bytes, as: UTF8.self) ?? self
    }
}
