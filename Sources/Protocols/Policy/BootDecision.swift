import NIOCore
import Foundation

/// What the policy chain decided for one request. Which fields matter depends on the hook:
/// - dhcp: `ignore`, `filename`, `nextServer`, `serverName`, `ipxeScript`, `options`, and in
///   full DHCP mode `address` (the client's reserved address);
/// - tftp: `content` (generated file), `path` (remapped path inside the root), `refuse`;
/// - http: `content` + `contentType`, `path` (a file under the HTTP root), `refuse`, `status`.
/// `note` is free text for the log; `policy` names the policy that decided.
public struct BootDecision: Sendable, Equatable {
    public var ignore: Bool
    public var filename: String?
    public var nextServer: String?
    public var serverName: String?
    /// An iPXE script generated for this client; served when the same client fetches `filename`
    /// by TFTP, or asks the HTTP script endpoint.
    public var ipxeScript: String?
    /// Extra DHCP options to put in the reply, by code, already encoded as bytes.
    public var options: [UInt8: [UInt8]]
    public var content: [UInt8]?
    public var contentType: String?
    public var path: String?
    public var refuse: String?
    public var status: Int?
    public var note: String?
    public var policy: String?
    /// Full DHCP: the address this client is to hold (an inventory's reservation). Used only
    /// when it lies in a served subnet and no other client holds it.
    public var address: String?

    public init(
        ignore: Bool = false, filename: String? = nil, nextServer: String? = nil,
        serverName: String? = nil, ipxeScript: String? = nil, options: [UInt8: [UInt8]] = [:],
        content: [UInt8]? = nil, contentType: String? = nil, path: String? = nil,
        refuse: String? = nil, status: Int? = nil, note: String? = nil, policy: String? = nil,
        address: String? = nil
    ) {
        self.address = address
        self.ignore = ignore
        self.filename = filename
        self.nextServer = nextServer
        self.serverName = serverName
        self.ipxeScript = ipxeScript
        self.options = options
        self.content = content
        self.contentType = contentType
        self.path = path
        self.refuse = refuse
        self.status = status
        self.note = note
        self.policy = policy
    }
}

/// The seam between protocol servers and decision logic (cf. pixiecore's `Booter`).
/// Implementations must be safe to call from any event-loop thread and must not throw:
/// a policy failure is logged and counted inside and shows up as `nil` (no policy decided).
public protocol BootDecider: Sendable {
    /// Runs the request through the chain; nil when every policy passed (or failed).
    func decide(_ request: BootRequest) -> BootDecision?

    /// The same for a DHCP request, with the datagram it was decoded from. A decider that
    /// remembers clients between requests can keep these bytes (one copy) instead of the many
    /// strings and arrays decoded from them. The default ignores them.
    func decide(_ request: BootRequest, datagram: ByteBuffer) -> BootDecision?

    /// For a server that sends the answers to several requests at once (the ProxyDHCP receive
    /// thread's batches): decides like `decide(_:datagram:)`, but does not wait for what the
    /// decision must make durable first. It returns the commit to wait for with
    /// `awaitCommit(through:)` before its answer is sent; 0 when there is none. One wait then
    /// covers a whole batch, instead of one commit per answer in turn.
    func decideHoldingCommit(_ request: BootRequest, datagram: ByteBuffer) -> (decision: BootDecision?, commit: UInt64)

    /// Waits until everything up to `commit` is durable. False when it is not within the
    /// decider's time limit: the answers that needed it must not be sent.
    func awaitCommit(through commit: UInt64) -> Bool

    /// For a server that would rather decide on the thread it is on (an HTTP event loop) than
    /// hand every request to another: decides like `decideHoldingCommit`, but only if that
    /// cannot wait for anything (a policy state held by another decision, a lock held across
    /// I/O). Nil means "not now": decide on a thread that may block. A decision that started
    /// runs to the end, bounded by the policies' budget. The default is always nil.
    func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)?

    /// `awaitCommit(through:)` without holding a thread: `done` is called once, from any
    /// thread, with the same answer. The default asks `awaitCommit` on the calling thread.
    func whenDurable(through commit: UInt64, _ done: @escaping @Sendable (Bool) -> Void)
}

extension BootDecider {
    public func decide(_ request: BootRequest, datagram: ByteBuffer) -> BootDecision? { decide(request) }

    public func decideHoldingCommit(_ request: BootRequest, datagram: ByteBuffer) -> (decision: BootDecision?, commit: UInt64) {
        (decide(request, datagram: datagram), 0)
    }

    public func awaitCommit(through commit: UInt64) -> Bool { true }

    public func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)? { nil }

    public func whenDurable(through commit: UInt64, _ done: @escaping @Sendable (Bool) -> Void) {
        done(awaitCommit(through: commit))
    }
}

/// A decider that never decides; servers fall back to their static behaviour.
public struct NoDecider: BootDecider {
    public init() {}
    public func decide(_ request: BootRequest) -> BootDecision? { nil }
}

/// The decision as JSON (the decision journal, `/api/v1/clients/{mac}/decisions`): only the
/// fields set; options by code as hex; content as base64.
extension BootDecision: Codable {
    enum CodingKeys: String, CodingKey {
        case ignore, filename, nextServer = "next_server", serverName = "server_name", ipxeScript = "ipxe_script",
             options, content, contentType = "content_type", path, refuse, status, note, policy, address
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            ignore: try c.decodeIfPresent(Bool.self, forKey: .ignore) ?? false,
            filename: try c.decodeIfPresent(String.self, forKey: .filename),
            nextServer: try c.decodeIfPresent(String.self, forKey: .nextServer),
            serverName: try c.decodeIfPresent(String.self, forKey: .serverName),
            ipxeScript: try c.decodeIfPresent(String.self, forKey: .ipxeScript),
            options: try (c.decodeIfPresent([String: String].self, forKey: .options) ?? [:]).reduce(into: [:]) { out, kv in
                guard let code = UInt8(kv.key), let bytes = Hex.decode(kv.value) else {
                    throw DecodingError.dataCorruptedError(forKey: .options, in: c, debugDescription: "option \(kv.key): not a code and hex bytes")
                }
                out[code] = bytes
            },
            content: try c.decodeIfPresent(String.self, forKey: .content).map { text in
                guard let data = Data(base64Encoded: text) else {
                    throw DecodingError.dataCorruptedError(forKey: .content, in: c, debugDescription: "not base64")
                }
                return Array(data)
            },
            contentType: try c.decodeIfPresent(String.self, forKey: .contentType),
            path: try c.decodeIfPresent(String.self, forKey: .path),
            refuse: try c.decodeIfPresent(String.self, forKey: .refuse),
            status: try c.decodeIfPresent(Int.self, forKey: .status),
            note: try c.decodeIfPresent(String.self, forKey: .note),
            policy: try c.decodeIfPresent(String.self, forKey: .policy),
            address: try c.decodeIfPresent(String.self, forKey: .address))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if ignore { try c.encode(true, forKey: .ignore) }
        try c.encodeIfPresent(filename, forKey: .filename)
        try c.encodeIfPresent(nextServer, forKey: .nextServer)
        try c.encodeIfPresent(serverName, forKey: .serverName)
        try c.encodeIfPresent(ipxeScript, forKey: .ipxeScript)
        if !options.isEmpty {
            try c.encode(Dictionary(uniqueKeysWithValues: options.map { (String($0.key), Hex.encode($0.value)) }), forKey: .options)
        }
        try c.encodeIfPresent(content.map { Data($0).base64EncodedString() }, forKey: .content)
        try c.encodeIfPresent(contentType, forKey: .contentType)
        try c.encodeIfPresent(path, forKey: .path)
        try c.encodeIfPresent(refuse, forKey: .refuse)
        try c.encodeIfPresent(status, forKey: .status)
        try c.encodeIfPresent(note, forKey: .note)
        try c.encodeIfPresent(policy, forKey: .policy)
        try c.encodeIfPresent(address, forKey: .address)
    }
}
