import Clients
import Foundation
import Logging
import Metrics
import NIOHTTP1
import Protocols

/// The control API under `/api/v1`: outside systems (an installer's last step, razor-server,
/// an inventory system, an operator) read and change what policies keep per client, and reload
/// the chain. docs/api.md says how to call it; `openapi.json` describes it.
///
/// Who may do what:
/// - with a tokens file, every endpoint but the OpenAPI document needs a bearer token; a read
///   token reads, a write token also writes;
/// - without one, reads are open (as the status page is) and writes are off.
///
/// A write answers 200 only once its change is durable in the state store, so an installer
/// that got 200 may power the machine off. Every write is logged with who made it (the token's
/// name or line) and the table before and after.
struct ControlAPI: Sendable {
    /// What a reload through the API says back.
    enum ReloadOutcome: Sendable {
        case loaded(chain: [String])
        case refused(String)
    }

    let store: ClientStateStore
    let tokens: TokenBox
    /// Reloads the chain; given who asked, for the log.
    let reload: @Sendable (String) -> ReloadOutcome
    let logger: Logger
    /// Full DHCP's pool (nil: full DHCP is off). Its journal is `store`'s writer, so a lease
    /// change's mark is waited for like a state write's.
    var leases: LeasePool?
    /// The DHCPv6 bindings (`--dhcp6` with IPv6 ranges), listed beside the leases.
    var leases6: DHCPv6LeasePool?
    /// The shadow chain (`/api/v1/shadow`) and the decision journal (`.../decisions`).
    var shadow: ShadowChain?
    var journal: DecisionJournal?
    /// How long a write waits for its commit before it answers 503.
    var durableTimeout: TimeInterval = 5

    static let prefix = "/api/v1"
    /// Clients in one page of `GET /api/v1/clients`, when `limit` is not given and at most.
    static let defaultPage = 100, maxPage = 1000

    var routes: [String: HTTPServer.Route] {
        let api = self
        return [Self.prefix + "/*": { api.respond(to: $0) }]
    }

    // MARK: routing

    func respond(to request: HTTPRequestContext) -> HTTPResponse {
        let path = request.path.hasSuffix("/") && request.path.count > 1 ? String(request.path.dropLast()) : request.path
        let parts = path.dropFirst(Self.prefix.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let response: HTTPResponse
        let endpoint: String
        switch (parts.dropFirst().first, parts.count) {
        case ("openapi.json", 2):
            endpoint = "openapi"
            response = request.method == .GET || request.method == .HEAD
                ? HTTPResponse(status: .ok, contentType: "application/json", body: .bytes(Array(OpenAPIDocument.json.utf8)))
                : Self.notAllowed("GET")
        case ("clients", 2):
            endpoint = "clients"
            response = request.method == .GET ? authorized(request, write: false) { _ in list(request) } : Self.notAllowed("GET")
        case ("clients", 4) where parts[3] == "decisions":
            endpoint = "decisions"
            response = request.method == .GET ? authorized(request, write: false) { _ in decisions(request, mac: parts[2]) } : Self.notAllowed("GET")
        case ("shadow", 2):
            endpoint = "shadow"
            response = request.method == .GET ? authorized(request, write: false) { _ in shadowReport(request) } : Self.notAllowed("GET")
        case ("clients", 4) where parts[3] == "state":
            endpoint = "state"
            response = state(request, mac: parts[2])
        case ("leases", 2):
            endpoint = "leases"
            response = request.method == .GET ? authorized(request, write: false) { _ in listLeases(request) } : Self.notAllowed("GET")
        case ("leases", 3):
            endpoint = "lease"
            response = lease(request, address: parts[2])
        case ("reload", 2):
            endpoint = "reload"
            response = request.method == .POST ? authorized(request, write: true) { who in reloadChain(who) } : Self.notAllowed("POST")
        default:
            endpoint = "unknown"
            response = Self.error(.notFound, "no such endpoint: \(request.method) \(request.path) (see \(Self.prefix)/openapi.json)")
        }
        Counter(label: "bootpolicy_api_requests_total", dimensions: [
            ("endpoint", endpoint), ("method", request.method.rawValue), ("status", "\(response.status.code)"),
        ]).increment()
        return response
    }

    private func state(_ request: HTTPRequestContext, mac raw: String) -> HTTPResponse {
        let write: Bool
        switch request.method {
        case .GET: write = false
        case .PUT, .PATCH, .DELETE: write = true
        default: return Self.notAllowed("GET, PUT, PATCH, DELETE")
        }
        return authorized(request, write: write) { who in
            guard let mac = MACAddress.normalize(raw) else {
                return Self.error(.badRequest, "not a MAC address: '\(raw)' (52:54:00:12:34:56, 52-54-00-12-34-56 and 5254.0012.3456 are)")
            }
            switch request.method {
            case .GET:
                guard let entry = store.entry(mac: mac) else { return Self.error(.notFound, "no state for \(mac)") }
                return Self.json(.ok, Self.client(mac, entry))
            case .DELETE:
                return change(request, mac: mac, who: who, action: "delete") { _ in nil }
            default:
                let patch = request.method == .PATCH
                let body: [String: StateValue?]
                do {
                    body = try StateBody.parse(request.body, allowingNull: patch)
                } catch {
                    return Self.error(.badRequest, "\(error)")
                }
                return change(request, mac: mac, who: who, action: patch ? "patch" : "put") { current in
                    guard patch else { return body.compactMapValues { $0 } }
                    var merged = current ?? [:]
                    for (key, value) in body { merged[key] = value }
                    return merged
                }
            }
        }
    }

    // MARK: authorisation

    /// Runs `body` with who is asking when the request may go on; else the refusal (401/403).
    func authorized(_ request: HTTPRequestContext, write: Bool, _ body: (String) -> HTTPResponse) -> HTTPResponse {
        guard let tokens = tokens.current else {
            if write {
                return Self.error(.forbidden, "writes are off: this server has no API tokens file (serve --api-tokens FILE, config api.tokens)")
            }
            return body("anonymous")
        }
        switch tokens.authenticate(request.headers.first(name: "authorization")) {
        case .failure(let failure):
            Counter(label: "bootpolicy_api_auth_failures_total", dimensions: [("reason", "\(failure)")]).increment()
            let why: String
            switch failure {
            case .missing: why = "no token: send Authorization: Bearer <token>"
            case .malformed: why = "the Authorization header is not `Bearer <token>` (or Basic with the token as password)"
            case .unknown: why = "unknown token"
            }
            if write || failure != .missing {
                logger.warning("api: refused \(request.method) \(request.path): \(why)", metadata: ["client": "\(request.clientAddress)"])
            }
            var response = Self.error(.unauthorized, why)
            response.headers.append(("WWW-Authenticate", "Bearer realm=\"bootpolicy\""))
            // The status page is read by browsers, which prompt for Basic only.
            if request.path == "/" { response.headers.append(("WWW-Authenticate", "Basic realm=\"bootpolicy\"")) }
            return response
        case .success(let token):
            if write && token.scope != .write {
                Counter(label: "bootpolicy_api_auth_failures_total", dimensions: [("reason", "read_token_writing")]).increment()
                logger.warning("api: refused \(request.method) \(request.path): a read token cannot write",
                               metadata: ["client": "\(request.clientAddress)", "who": "\(token.who)"])
                return Self.error(.forbidden, "this token may only read (\(token.who) is a read token)")
            }
            return body(token.who)
        }
    }

    // MARK: endpoints

    /// One write: applied, then waited for until durable, then logged with before and after.
    private func change(_ request: HTTPRequestContext, mac: String, who: String, action: String,
                        _ transform: @escaping ([String: StateValue]?) -> [String: StateValue]?) -> HTTPResponse {
        var ttl: TimeInterval?
        if let text = request.query["ttl"] {
            guard let t = Double(text), t > 0, t.isFinite else {
                return Self.error(.badRequest, "ttl must be a positive number of seconds, not '\(text)'")
            }
            ttl = t
        }
        let outcome: (before: ClientState?, after: ClientState?)
        do {
            outcome = try store.update(mac: mac, ttl: ttl) { current throws(StateError) in transform(current) }
        } catch {
            Counter(label: "bootpolicy_api_writes_refused_total", dimensions: [("action", action)]).increment()
            if error.unavailable { return Self.error(.serviceUnavailable, error.description) }
            return Self.error(.unprocessableEntity, error.description)
        }
        // Waited for without holding a thread, so concurrent writes share a commit (a worker
        // blocked per write capped them at the pool's size, 4 on two cores).
        let mark = store.mark
        let (store, logger, timeout, client) = (store, logger, durableTimeout, request.clientAddress)
        return .later { complete in
            store.whenDurable(through: mark, timeout: timeout) { durable in
                complete {
                    guard durable else {
                        Counter(label: "bootpolicy_api_writes_refused_total", dimensions: [("action", action)]).increment()
                        logger.error("api: \(action) \(mac) not durable within \(timeout) s; it stays queued and is retried",
                                     metadata: ["who": "\(who)", "store": "\(store.location)"])
                        return Self.error(.serviceUnavailable,
                                          "the change is not durable yet (state store \(store.location)); it stays queued and is retried: repeat the request to be sure")
                    }
                    Counter(label: "bootpolicy_api_writes_total", dimensions: [("action", action)]).increment()
                    logger.notice("api: \(action) state of \(mac)", metadata: [
                        "who": "\(who)", "client": "\(client)", "mac": "\(mac)",
                        "before": "\(outcome.before.map { StateJSON.encode($0.values) } ?? "none")",
                        "after": "\(outcome.after.map { StateJSON.encode($0.values) } ?? "none")",
                    ])
                    if let after = outcome.after { return Self.json(.ok, Self.client(mac, after)) }
                    if outcome.before == nil && action == "patch" {
                        // Removing keys of a client that has none: nothing is there to change.
                        return Self.error(.notFound, "no state for \(mac)")
                    }
                    return Self.json(.ok, "{\"mac\":\(JSONString.quote(mac)),\"cleared\":\(outcome.before != nil)}")
                }
            }
        }
    }

    /// A request refused, with the answer that says why.
    struct Refusal: Error {
        let response: HTTPResponse
    }

    /// A listing's `limit=`: `defaultPage` when absent; else the 400 that refuses it.
    static func pageLimit(_ request: HTTPRequestContext) -> Result<Int, Refusal> {
        guard let text = request.query["limit"] else { return .success(defaultPage) }
        guard let n = Int(text), (1...maxPage).contains(n) else {
            return .failure(.init(response: error(.badRequest, "limit must be a whole number from 1 to \(maxPage), not '\(text)'")))
        }
        return .success(n)
    }

    private func list(_ request: HTTPRequestContext) -> HTTPResponse {
        let limit: Int
        switch Self.pageLimit(request) {
        case .success(let n): limit = n
        case .failure(let refused): return refused.response
        }
        var after: String?
        if let text = request.query["after"], !text.isEmpty {
            guard let mac = MACAddress.normalize(text) else { return Self.error(.badRequest, "after: not a MAC address: '\(text)'") }
            after = mac
        }
        let key = request.query["key"], value = request.query["value"]
        let matching = store.snapshot().filter { _, state in
            switch (key, value) {
            case (nil, nil): return true
            case (let key?, nil): return state.values[key] != nil
            case (let key?, let value?): return state.values[key].map { Self.matches($0, value) } ?? false
            case (nil, let value?): return state.values.values.contains { Self.matches($0, value) }
            }
        }
        let sorted = matching.keys.sorted()
        let start = after.map { a in sorted.firstIndex(where: { $0 > a }) ?? sorted.count } ?? 0
        let page = sorted[start..<min(sorted.count, start + limit)]
        var out = "{\"clients\":["
        for (i, mac) in page.enumerated() {
            if i > 0 { out += "," }
            out += Self.client(mac, matching[mac]!)
        }
        out += "],\"total\":\(sorted.count),\"next\":"
        out += start + limit < sorted.count ? JSONString.quote(page.last!) : "null"
        return Self.json(.ok, out + "}")
    }

    // MARK: shadow chain and decision journal

    static let reportEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    private func shadowReport(_ request: HTTPRequestContext) -> HTTPResponse {
        guard let shadow, shadow.chain != nil else {
            return Self.json(.ok, "{\"enabled\":false,\"chain\":[],\"compared\":0,\"shed\":0,\"clients\":[]}")
        }
        var mac: String?
        if let raw = request.query["mac"] {
            guard let m = MACAddress.normalize(raw) else { return Self.error(.badRequest, "not a MAC address: '\(raw)'") }
            mac = m
        }
        guard let body = try? Self.reportEncoder.encode(shadow.report(mac: mac)) else {
            return Self.error(.internalServerError, "the shadow report could not be encoded")
        }
        return Self.json(.ok, "{\"enabled\":true," + String(decoding: body.dropFirst(), as: UTF8.self))
    }

    private func decisions(_ request: HTTPRequestContext, mac raw: String) -> HTTPResponse {
        guard let mac = MACAddress.normalize(raw) else {
            return Self.error(.badRequest, "not a MAC address: '\(raw)' (52:54:00:12:34:56, 52-54-00-12-34-56 and 5254.0012.3456 are)")
        }
        guard let journal else { return Self.error(.notFound, "the decision journal is off (journal.enabled: false)") }
        let limit: Int
        switch Self.pageLimit(request) {
        case .success(let n): limit = n
        case .failure(let refused): return refused.response
        }
        var since: Date?
        if let text = request.query["since"] {
            guard let t = WhyCommand.parseTime(text) else {
                return Self.error(.badRequest, "since must be an ISO 8601 time (2026-12-01T10:00:00Z) or an age (90s, 30m, 12h, 7d), not '\(text)'")
            }
            since = t
        }
        let entries: [JournalEntry]
        do {
            entries = try journal.store.entries(mac: mac, since: since, limit: limit)
        } catch {
            return Self.error(.serviceUnavailable, "the decision journal \(journal.store.description) cannot be read: \(error)")
        }
        struct Page: Encodable { var mac: String; var journal: String; var decisions: [JournalEntry] }
        guard let body = try? Self.reportEncoder.encode(Page(mac: mac, journal: journal.store.description, decisions: entries)) else {
            return Self.error(.internalServerError, "the decisions could not be encoded")
        }
        return Self.json(.ok, String(decoding: body, as: UTF8.self))
    }

    // MARK: leases

    static let isoFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }()

    static func leaseJSON(_ l: Lease, now: Date) -> String {
        let expires = l.expires == .distantFuture ? "never" : isoFormatter.string(from: l.expires)
        return "{\"address\":\(JSONString.quote(l.address.description)),\"mac\":\(JSONString.quote(l.mac)),"
            + "\"client_id\":\(JSONString.quote(l.client)),\"hostname\":\(l.hostname.map(JSONString.quote) ?? "null"),"
            + "\"state\":\(JSONString.quote(l.state.rawValue)),\"expires\":\(JSONString.quote(expires)),\"active\":\(l.isLive(at: now))}"
    }

    private func listLeases(_ request: HTTPRequestContext) -> HTTPResponse {
        var onlyActive = false
        if let text = request.query["active"] {
            guard text == "true" || text == "false" else { return Self.error(.badRequest, "active must be true or false, not '\(text)'") }
            onlyActive = text == "true"
        }
        let now = Date()
        // DHCPv6 bindings, when there is a DHCPv6 pool: `"dhcp6":{"ranges":[...],"leases":[...]}`.
        var v6 = ""
        if let pool6 = leases6 {
            let all6 = pool6.leases.sorted { $0.address < $1.address }
            let shown6 = onlyActive ? all6.filter { $0.isLive(at: now) } : all6
            let ranges6 = pool6.ranges.map { r in
                "{\"start\":\(JSONString.quote(r.start.description)),\"end\":\(JSONString.quote(r.end.description)),"
                    + "\"prefix_length\":\(r.prefixLength),\"lease_seconds\":\(r.leaseTime),\"size\":\(r.size),"
                    + "\"active\":\(all6.filter { r.contains($0.address) && $0.isLive(at: now) }.count)}"
            }
            v6 = ",\"dhcp6\":{\"ranges\":[\(ranges6.joined(separator: ","))],\"leases\":[" + shown6.map { l in
                let expires = l.expires == .distantFuture ? "never" : Self.isoFormatter.string(from: l.expires)
                return "{\"address\":\(JSONString.quote(l.address.description)),\"mac\":\(JSONString.quote(l.mac)),"
                    + "\"client_id\":\(JSONString.quote(l.client)),\"state\":\(JSONString.quote(l.state.rawValue)),"
                    + "\"expires\":\(JSONString.quote(expires)),\"active\":\(l.isLive(at: now))}"
            }.joined(separator: ",") + "]}"
        }
        guard let pool = leases else { return Self.json(.ok, "{\"enabled\":false,\"ranges\":[],\"leases\":[]\(v6)}") }
        let all = pool.all
        let ranges = pool.ranges.map { r in
            let active = all.filter { r.contains($0.address) && $0.isLive(at: now) }.count
            return "{\"start\":\(JSONString.quote(r.start.description)),\"end\":\(JSONString.quote(r.end.description)),"
                + "\"subnet\":\(JSONString.quote(r.subnet.description)),\"lease_seconds\":\(r.leaseTime),\"size\":\(r.size),\"active\":\(active)}"
        }
        let shown = onlyActive ? all.filter { $0.isLive(at: now) } : all
        return Self.json(.ok, "{\"enabled\":true,\"ranges\":[\(ranges.joined(separator: ","))],\"leases\":["
                         + shown.map { Self.leaseJSON($0, now: now) }.joined(separator: ",") + "]\(v6)}")
    }

    private func lease(_ request: HTTPRequestContext, address raw: String) -> HTTPResponse {
        let write: Bool
        switch request.method {
        case .GET: write = false
        case .DELETE: write = true
        default: return Self.notAllowed("GET, DELETE")
        }
        return authorized(request, write: write) { who in
            guard let address = IPv4Address(raw) else { return Self.error(.badRequest, "not an IPv4 address: '\(raw)'") }
            guard let pool = leases else { return Self.error(.notFound, "full DHCP is off (serve --dhcp-range): no leases") }
            guard request.method == .DELETE else {
                guard let l = pool.lease(at: address) else { return Self.error(.notFound, "no lease record for \(address)") }
                return Self.json(.ok, Self.leaseJSON(l, now: Date()))
            }
            guard let (before, mark) = pool.forceRelease(address) else { return Self.error(.notFound, "no lease record for \(address)") }
            let (store, logger, timeout) = (store, logger, durableTimeout)
            return .later { complete in
                store.whenDurable(through: mark, timeout: timeout) { durable in
                    complete {
                        guard durable else {
                            return Self.error(.serviceUnavailable, "the release of \(address) is not durable yet (state store \(store.location)); repeat the request to be sure")
                        }
                        Counter(label: "bootpolicy_api_writes_total", dimensions: [("action", "release_lease")]).increment()
                        logger.notice("api: released lease \(address)", metadata: ["who": "\(who)", "mac": "\(before.mac)", "client_id": "\(before.client)"])
                        return Self.json(.ok, "{\"address\":\(JSONString.quote(address.description)),\"released\":true}")
                    }
                }
            }
        }
    }

    private func reloadChain(_ who: String) -> HTTPResponse {
        // The reloader logs the outcome, naming who asked.
        switch reload("api: \(who)") {
        case .loaded(let chain):
            Counter(label: "bootpolicy_api_writes_total", dimensions: [("action", "reload")]).increment()
            return Self.json(.ok, "{\"loaded\":true,\"chain\":[\(chain.map(JSONString.quote).joined(separator: ","))]}")
        case .refused(let why):
            Counter(label: "bootpolicy_api_writes_refused_total", dimensions: [("action", "reload")]).increment()
            return Self.json(.unprocessableEntity, "{\"loaded\":false,\"error\":\(JSONString.quote(why))}")
        }
    }

    // MARK: JSON

    /// A state value compared with a query's text: `true`, `42` and `1.5` match their values.
    static func matches(_ v: StateValue, _ text: String) -> Bool {
        switch v {
        case .string(let s): return s == text
        case .integer(let i): return Int(text) == i
        case .number(let d): return Double(text) == d
        case .bool(let b): return text == (b ? "true" : "false")
        }
    }

    static func client(_ mac: String, _ state: ClientState) -> String {
        "{\"mac\":\(JSONString.quote(mac)),\"state\":\(StateJSON.encode(state.values)),\"expires\":\(JSONString.quote(timestamp(state.expires)))}"
    }

    /// RFC 3339 in UTC, to the second. By hand: ISO8601DateFormatter goes through ICU and
    /// was a quarter of a PUT's CPU time here.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var t = tm()
        gmtime_r(&seconds, &t)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(t.tm_year + 1900)-\(two(t.tm_mon + 1))-\(two(t.tm_mday))T\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec))Z"
    }

    static func json(_ status: HTTPResponseStatus, _ text: String) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: .bytes(Array((text + "\n").utf8)))
    }

    /// Every refusal: one line saying why, as JSON.
    static func error(_ status: HTTPResponseStatus, _ why: String) -> HTTPResponse {
        json(status, "{\"error\":\(JSONString.quote(why))}")
    }

    static func notAllowed(_ allow: String) -> HTTPResponse {
        var r = error(.methodNotAllowed, "method not allowed here; allowed: \(allow)")
        r.headers.append(("Allow", allow))
        return r
    }
}
