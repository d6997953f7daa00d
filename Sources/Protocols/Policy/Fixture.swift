import Foundation

/// One recorded request (docs: FIXTURE.md). DHCP fixtures carry the raw UDP payload as hex
/// (`raw` is the truth, `decoded` is regenerated for humans and ignored by loaders); TFTP and
/// HTTP fixtures give their fields directly.
public struct Fixture: Codable, Sendable, Equatable {
    public var name: String
    public var origin: String?
    public var kind: BootRequest.Kind
    public var serverPort: Int?
    public var source: String?
    public var interface: String?
    /// DHCP: lower-case hex of the whole DHCP message.
    public var raw: String?
    /// DHCP: the summary of `raw`, written for humans.
    public var decoded: DHCPMessage.Summary?
    /// TFTP/HTTP.
    public var mac: String?
    public var path: String?
    public var query: [String: String]?
    /// "ipv6": `raw` is a DHCPv6 message (or a Relay-forward chain), `source` the IPv6 address it
    /// came from, `server_port` 547 or 4011. Absent: DHCPv4.
    public var family: BootRequest.Family?

    enum CodingKeys: String, CodingKey {
        case name, origin, kind, source, interface, raw, decoded, mac, path, query, family
        case serverPort = "server_port"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        origin = try c.decodeIfPresent(String.self, forKey: .origin)
        kind = try c.decode(BootRequest.Kind.self, forKey: .kind)
        serverPort = try c.decodeIfPresent(Int.self, forKey: .serverPort)
        source = try c.decodeIfPresent(String.self, forKey: .source)
        interface = try c.decodeIfPresent(String.self, forKey: .interface)
        raw = try c.decodeIfPresent(String.self, forKey: .raw)
        // `decoded` is for humans and may be stale or hand-edited: never a reason to fail.
        decoded = try? c.decodeIfPresent(DHCPMessage.Summary.self, forKey: .decoded)
        mac = try c.decodeIfPresent(String.self, forKey: .mac)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        query = try c.decodeIfPresent([String: String].self, forKey: .query)
        family = try c.decodeIfPresent(BootRequest.Family.self, forKey: .family)
    }

    /// A DHCPv6 fixture from the bytes of a message as it arrived.
    public init(name: String, origin: String?, dhcpv6 bytes: [UInt8], serverPort: Int = 547, source: String?, interface: String? = nil) {
        self.name = name
        self.origin = origin
        self.kind = .dhcp
        self.family = .ipv6
        self.serverPort = serverPort
        self.source = source
        self.interface = interface
        self.raw = Hex.encode(bytes)
    }

    /// A DHCP fixture from a decoded message (as `bootpolicy import`/`record` write them).
    public init(
        name: String, origin: String?, message: DHCPMessage, serverPort: Int? = 67,
        source: String? = nil, interface: String? = nil
    ) {
        self.name = name
        self.origin = origin
        self.kind = .dhcp
        self.serverPort = serverPort
        self.source = source
        self.interface = interface
        self.raw = Hex.encode(message.bytes)
        self.decoded = message.summary
    }

    /// A TFTP or HTTP fixture.
    public init(
        name: String, origin: String?, kind: BootRequest.Kind, mac: String, source: String?,
        path: String, query: [String: String]? = nil
    ) {
        self.name = name
        self.origin = origin
        self.kind = kind
        self.mac = mac
        self.source = source
        self.path = path
        self.query = query
    }

    public static func load(from url: URL) throws -> Fixture {
        let data = try Data(contentsOf: url)
        do {
            return try JSONDecoder().decode(Fixture.self, from: data)
        } catch let error as DecodingError {
            throw DHCPError.malformed(field: url.lastPathComponent, reason: Self.explain(error))
        }
    }

    /// Pretty, key-sorted JSON with a trailing newline: stable in git.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        return data
    }

    /// The DHCP message in `raw`.
    public func message() throws -> DHCPMessage {
        guard kind == .dhcp else { throw DHCPError.malformed(field: "kind", reason: "\(kind.rawValue) fixture has no DHCP message") }
        guard family != .ipv6 else { throw DHCPError.malformed(field: "family", reason: "an ipv6 fixture holds a DHCPv6 message, not a DHCPv4 one") }
        guard let raw else { throw DHCPError.malformed(field: "raw", reason: "missing") }
        guard let bytes = Hex.decode(raw) else { throw DHCPError.malformed(field: "raw", reason: "not hex") }
        return try DHCPMessage(bytes: bytes)
    }

    /// The request a server would have handed to the policies.
    public func bootRequest() throws -> BootRequest {
        switch kind {
        case .dhcp where family == .ipv6:
            guard let raw, let bytes = Hex.decode(raw) else { throw DHCPError.malformed(field: "raw", reason: "missing or not hex") }
            let packet: DHCPv6Packet
            do { packet = try DHCPv6Packet(bytes: bytes) } catch { throw DHCPError.malformed(field: "raw", reason: "DHCPv6: \(error)") }
            return BootRequest(dhcpv6: packet, source: source.flatMap(IPv6Address.init), interface: interface, serverPort: serverPort ?? 547)
        case .dhcp:
            return BootRequest(dhcp: try message(), serverPort: serverPort ?? 67, interface: interface, source: source)
        case .tftp, .http:
            guard let path else { throw DHCPError.malformed(field: "path", reason: "missing in \(kind.rawValue) fixture") }
            return BootRequest(
                kind: kind, mac: mac?.lowercased() ?? "", interface: interface, clientAddress: source,
                serverPort: serverPort, path: path, query: query ?? [:])
        }
    }

    static func explain(_ error: DecodingError) -> String {
        switch error {
        case let .keyNotFound(key, context):
            return "missing field \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "\(path.isEmpty ? "document" : path): \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }
}
