import NIOCore

/// DHCPv6 message types (RFC 8415 §7.3).
public enum DHCPv6MessageType: UInt8, Sendable, CaseIterable {
    case solicit = 1, advertise, request, confirm, renew, rebind, reply, release, decline, reconfigure,
         informationRequest, relayForward, relayReply

    /// Lower-case names as policies and logs see them (`solicit`, `information-request`).
    public var name: String {
        // Spelled out: "\(self)" went through the runtime's reflection for every request.
        switch self {
        case .solicit: return "solicit"
        case .advertise: return "advertise"
        case .request: return "request"
        case .confirm: return "confirm"
        case .renew: return "renew"
        case .rebind: return "rebind"
        case .reply: return "reply"
        case .release: return "release"
        case .decline: return "decline"
        case .reconfigure: return "reconfigure"
        case .informationRequest: return "information-request"
        case .relayForward: return "relay-forw"
        case .relayReply: return "relay-repl"
        }
    }

    /// Sent by clients (what a server may answer).
    public var isFromClient: Bool {
        switch self {
        case .solicit, .request, .confirm, .renew, .rebind, .release, .decline, .informationRequest: return true
        default: return false
        }
    }
}

/// Option codes this server reads or writes (IANA "DHCPv6 Option Codes").
public enum DHCPv6OptionCode {
    public static let clientID: UInt16 = 1
    public static let serverID: UInt16 = 2
    public static let iaNA: UInt16 = 3
    public static let iaTA: UInt16 = 4
    public static let iaAddress: UInt16 = 5
    public static let optionRequest: UInt16 = 6
    public static let preference: UInt16 = 7
    public static let elapsedTime: UInt16 = 8
    public static let relayMessage: UInt16 = 9
    public static let statusCode: UInt16 = 13
    public static let rapidCommit: UInt16 = 14
    public static let userClass: UInt16 = 15
    public static let vendorClass: UInt16 = 16
    public static let vendorOptions: UInt16 = 17
    public static let interfaceID: UInt16 = 18
    public static let dnsServers: UInt16 = 23
    public static let domainList: UInt16 = 24
    public static let iaPD: UInt16 = 25
    public static let remoteID: UInt16 = 37
    public static let bootFileURL: UInt16 = 59
    public static let bootFileParameters: UInt16 = 60
    public static let clientArchitecture: UInt16 = 61
    public static let networkInterfaceID: UInt16 = 62
    public static let clientLinkLayerAddress: UInt16 = 79
}

/// RFC 8415 §21.13 status codes.
public enum DHCPv6Status: UInt16, Sendable {
    case success = 0, unspecFail, noAddrsAvail, noBinding, notOnLink, useMulticast, noPrefixAvail
}

/// One option: its code and value bytes (the length is the value's).
public struct DHCPv6Option: Sendable, Equatable {
    public var code: UInt16
    public var value: [UInt8]
    public init(code: UInt16, value: [UInt8]) {
        self.code = code
        self.value = value
    }
}

/// An option list in wire order; a code may repeat (IA_NA, IAADDR, relay options).
public struct DHCPv6Options: Sendable, Equatable, Sequence {
    public var list: [DHCPv6Option]
    public init(_ list: [DHCPv6Option] = []) { self.list = list }

    public func makeIterator() -> IndexingIterator<[DHCPv6Option]> { list.makeIterator() }

    /// The first value with `code`.
    public subscript(code code: UInt16) -> [UInt8]? { list.first { $0.code == code }?.value }
    public func all(_ code: UInt16) -> [[UInt8]] { list.filter { $0.code == code }.map(\.value) }
    public func contains(_ code: UInt16) -> Bool { list.contains { $0.code == code } }

    public mutating func append(_ code: UInt16, _ value: [UInt8]) { list.append(DHCPv6Option(code: code, value: value)) }
    /// Replaces every option with `code` by one (at the first one's place, else at the end).
    public mutating func set(_ code: UInt16, _ value: [UInt8]) {
        let at = list.firstIndex { $0.code == code } ?? list.count
        list.removeAll { $0.code == code }
        list.insert(DHCPv6Option(code: code, value: value), at: Swift.min(at, list.count))
    }
    public mutating func remove(_ code: UInt16) { list.removeAll { $0.code == code } }

    /// Options from `bytes` (a message's tail or an option's encapsulated area, named `area`
    /// in errors): code, 2-byte length, value, to the end exactly.
    public static func decode(_ bytes: ArraySlice<UInt8>, area: String) throws(DHCPv6Error) -> DHCPv6Options {
        var out: [DHCPv6Option] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            guard bytes.endIndex - i >= 4 else { throw .truncated(field: "\(area) option header", needed: 4, available: bytes.endIndex - i) }
            let code = UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
            let length = Int(UInt16(bytes[i + 2]) << 8 | UInt16(bytes[i + 3]))
            i += 4
            guard bytes.endIndex - i >= length else { throw .optionOverrun(code: code, length: length, available: bytes.endIndex - i, area: area) }
            out.append(DHCPv6Option(code: code, value: Array(bytes[i..<(i + length)])))
            i += length
        }
        return DHCPv6Options(out)
    }

    public func encode(into out: inout [UInt8]) {
        for o in list {
            out.append(UInt8(o.code >> 8)); out.append(UInt8(o.code & 0xff))
            let n = Swift.min(o.value.count, 0xffff)
            out.append(UInt8(n >> 8)); out.append(UInt8(n & 0xff))
            out.append(contentsOf: o.value.prefix(n))
        }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }
}

/// What can be wrong with a DHCPv6 packet.
public enum DHCPv6Error: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(field: String, needed: Int, available: Int)
    case unknownMessageType(UInt8)
    case optionOverrun(code: UInt16, length: Int, available: Int, area: String)
    case relayTooDeep(Int)
    case relayWithoutMessage
    case badOptionValue(code: UInt16, reason: String)

    public var description: String {
        switch self {
        case let .truncated(field, needed, available): return "truncated packet: \(field) needs \(needed) bytes, \(available) left"
        case let .unknownMessageType(t): return "unknown DHCPv6 message type \(t)"
        case let .optionOverrun(code, length, available, area):
            return "option \(code) in \(area) says \(length) bytes, \(available) left"
        case let .relayTooDeep(depth): return "relay messages nested \(depth) deep (at most \(DHCPv6Packet.maximumRelayDepth))"
        case .relayWithoutMessage: return "relay message without option 9 (relay-msg)"
        case let .badOptionValue(code, reason): return "option \(code): \(reason)"
        }
    }
}

/// A client or server message (RFC 8415 §8): type, 24-bit transaction id, options.
public struct DHCPv6Message: Sendable, Equatable {
    public var type: DHCPv6MessageType
    /// The 24-bit transaction id.
    public var transactionID: UInt32
    public var options: DHCPv6Options

    public init(type: DHCPv6MessageType, transactionID: UInt32, options: DHCPv6Options = DHCPv6Options()) {
        self.type = type
        self.transactionID = transactionID & 0xff_ffff
        self.options = options
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = [type.rawValue, UInt8(transactionID >> 16 & 0xff), UInt8(transactionID >> 8 & 0xff), UInt8(transactionID & 0xff)]
        options.encode(into: &out)
        return out
    }
}

/// A Relay-forward or Relay-reply (RFC 8415 §9): hop count, link and peer addresses, options
/// (one of them, 9, holding the relayed message).
public struct DHCPv6RelayMessage: Sendable, Equatable {
    public var type: DHCPv6MessageType
    public var hopCount: UInt8
    /// An address on the link the client is on (or :: when the relay cannot say).
    public var linkAddress: IPv6Address
    /// The address the relayed message came from: the client's, or the next relay's.
    public var peerAddress: IPv6Address
    public var options: DHCPv6Options

    public init(type: DHCPv6MessageType, hopCount: UInt8, linkAddress: IPv6Address, peerAddress: IPv6Address,
                options: DHCPv6Options) {
        self.type = type
        self.hopCount = hopCount
        self.linkAddress = linkAddress
        self.peerAddress = peerAddress
        self.options = options
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = [type.rawValue, hopCount] + linkAddress.bytes + peerAddress.bytes
        options.encode(into: &out)
        return out
    }
}

/// A datagram on port 547: a client's message, possibly inside relay messages, outermost
/// relay first.
public struct DHCPv6Packet: Sendable, Equatable {
    /// HOP_COUNT_LIMIT (RFC 8415 §7.6) relays, plus the client's own message.
    public static let maximumRelayDepth = 8
    public var relays: [DHCPv6RelayMessage]
    public var message: DHCPv6Message

    public init(relays: [DHCPv6RelayMessage] = [], message: DHCPv6Message) {
        self.relays = relays
        self.message = message
    }

    public init(bytes: [UInt8]) throws(DHCPv6Error) {
        var relays: [DHCPv6RelayMessage] = []
        var current = bytes[...]
        while true {
            guard let first = current.first else { throw .truncated(field: "msg-type", needed: 1, available: 0) }
            guard let type = DHCPv6MessageType(rawValue: first) else { throw .unknownMessageType(first) }
            if type == .relayForward || type == .relayReply {
                guard relays.count < Self.maximumRelayDepth else { throw .relayTooDeep(relays.count + 1) }
                guard current.count >= 34 else { throw .truncated(field: "relay header", needed: 34, available: current.count) }
                let s = current.startIndex
                let relay = DHCPv6RelayMessage(
                    type: type, hopCount: current[s + 1],
                    linkAddress: IPv6Address(bytes: current[(s + 2)..<(s + 18)])!,
                    peerAddress: IPv6Address(bytes: current[(s + 18)..<(s + 34)])!,
                    options: try DHCPv6Options.decode(current[(s + 34)...], area: "relay \(relays.count + 1)"))
                guard let inner = relay.options[code: DHCPv6OptionCode.relayMessage] else { throw .relayWithoutMessage }
                relays.append(relay)
                current = inner[...]
                continue
            }
            guard current.count >= 4 else { throw .truncated(field: "transaction-id", needed: 4, available: current.count) }
            let s = current.startIndex
            let xid = UInt32(current[s + 1]) << 16 | UInt32(current[s + 2]) << 8 | UInt32(current[s + 3])
            message = DHCPv6Message(type: type, transactionID: xid,
                                    options: try DHCPv6Options.decode(current[(s + 4)...], area: "message"))
            self.relays = relays
            return
        }
    }

    /// The message wrapped again in `relays` (a Relay-reply chain for a relayed request).
    public var bytes: [UInt8] {
        var inner = message.bytes
        for relay in relays.reversed() {
            var r = relay
            r.options.set(DHCPv6OptionCode.relayMessage, inner)
            inner = r.bytes
        }
        return inner
    }
}

/// A DUID (RFC 8415 §11): its type and the bytes after it.
public struct DUID: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]
    public init?(bytes: [UInt8]) {
        // The type and at least one byte; at most 128 bytes of identifier (§11.1).
        guard bytes.count >= 3, bytes.count <= 130 else { return nil }
        self.bytes = bytes
    }

    public var type: UInt16 { UInt16(bytes[0]) << 8 | UInt16(bytes[1]) }

    /// "llt", "en", "ll", "uuid" or the number.
    public var typeName: String {
        switch type {
        case 1: return "llt"
        case 2: return "en"
        case 3: return "ll"
        case 4: return "uuid"
        default: return "\(type)"
        }
    }

    /// The Ethernet address inside a DUID-LLT or DUID-LL of hardware type 1.
    public var ethernetAddress: [UInt8]? {
        guard bytes.count >= 4, UInt16(bytes[2]) << 8 | UInt16(bytes[3]) == 1 else { return nil }
        switch type {
        case 1 where bytes.count == 14: return Array(bytes[8..<14])
        case 3 where bytes.count == 10: return Array(bytes[4..<10])
        default: return nil
        }
    }

    /// DUID-UUID's sixteen bytes (RFC 6355).
    public var uuidBytes: [UInt8]? { type == 4 && bytes.count == 18 ? Array(bytes[2...]) : nil }

    public var description: String { Hex.encode(bytes, separator: ":") }
}

/// An IA_NA (RFC 8415 §21.4) with its addresses and status.
public struct DHCPv6IANA: Sendable, Equatable {
    public var iaid: UInt32
    public var t1: UInt32
    public var t2: UInt32
    public var options: DHCPv6Options

    public init(iaid: UInt32, t1: UInt32 = 0, t2: UInt32 = 0, options: DHCPv6Options = DHCPv6Options()) {
        self.iaid = iaid
        self.t1 = t1
        self.t2 = t2
        self.options = options
    }

    public init(bytes: [UInt8]) throws(DHCPv6Error) {
        guard bytes.count >= 12 else { throw .badOptionValue(code: DHCPv6OptionCode.iaNA, reason: "\(bytes.count) bytes, IA_NA needs 12") }
        func u32(_ at: Int) -> UInt32 { UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3]) }
        iaid = u32(0)
        t1 = u32(4)
        t2 = u32(8)
        options = try DHCPv6Options.decode(bytes[12...], area: "IA_NA")
    }

    /// The IAADDR options that decode (a malformed one is skipped).
    public var addresses: [DHCPv6IAAddress] {
        options.all(DHCPv6OptionCode.iaAddress).compactMap { try? DHCPv6IAAddress(bytes: $0) }
    }

    public var bytes: [UInt8] {
        var out = be32(iaid) + be32(t1) + be32(t2)
        options.encode(into: &out)
        return out
    }
}

/// An IAADDR (RFC 8415 §21.6).
public struct DHCPv6IAAddress: Sendable, Equatable {
    public var address: IPv6Address
    public var preferredLifetime: UInt32
    public var validLifetime: UInt32
    public var options: DHCPv6Options

    public init(address: IPv6Address, preferredLifetime: UInt32, validLifetime: UInt32, options: DHCPv6Options = DHCPv6Options()) {
        self.address = address
        self.preferredLifetime = preferredLifetime
        self.validLifetime = validLifetime
        self.options = options
    }

    public init(bytes: [UInt8]) throws(DHCPv6Error) {
        guard bytes.count >= 24 else { throw .badOptionValue(code: DHCPv6OptionCode.iaAddress, reason: "\(bytes.count) bytes, IAADDR needs 24") }
        address = IPv6Address(bytes: bytes[0..<16])!
        preferredLifetime = UInt32(bytes[16]) << 24 | UInt32(bytes[17]) << 16 | UInt32(bytes[18]) << 8 | UInt32(bytes[19])
        validLifetime = UInt32(bytes[20]) << 24 | UInt32(bytes[21]) << 16 | UInt32(bytes[22]) << 8 | UInt32(bytes[23])
        options = try DHCPv6Options.decode(bytes[24...], area: "IAADDR")
    }

    public var bytes: [UInt8] {
        var out = address.bytes + be32(preferredLifetime) + be32(validLifetime)
        options.encode(into: &out)
        return out
    }
}

@inline(__always) func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
@inline(__always) func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }

/// Typed readers of the options a boot server looks at. Each returns nil for an absent or
/// malformed option (the raw bytes stay in `options` for a policy to read).
extension DHCPv6Options {
    public var clientDUID: DUID? { self[code: DHCPv6OptionCode.clientID].flatMap { DUID(bytes: $0) } }
    public var serverDUID: DUID? { self[code: DHCPv6OptionCode.serverID].flatMap { DUID(bytes: $0) } }

    public var iaNAs: [DHCPv6IANA] { all(DHCPv6OptionCode.iaNA).compactMap { try? DHCPv6IANA(bytes: $0) } }

    /// Option 6: the codes asked for.
    public var requestedOptions: [UInt16] {
        guard let v = self[code: DHCPv6OptionCode.optionRequest], v.count % 2 == 0 else { return [] }
        return stride(from: 0, to: v.count, by: 2).map { UInt16(v[$0]) << 8 | UInt16(v[$0 + 1]) }
    }

    /// Option 61 (RFC 5970 §3.3): the architecture types, in order.
    public var clientArchitectures: [ClientArchitecture]? {
        guard let v = self[code: DHCPv6OptionCode.clientArchitecture], !v.isEmpty, v.count % 2 == 0 else { return nil }
        return stride(from: 0, to: v.count, by: 2).map { ClientArchitecture(code: UInt16(v[$0]) << 8 | UInt16(v[$0 + 1])) }
    }

    /// A list of 2-byte-length-prefixed opaque items (options 15 and 16 after 16's
    /// enterprise number, 60); nil when the lengths do not add up.
    static func lengthPrefixed(_ v: ArraySlice<UInt8>) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        var i = v.startIndex
        while i < v.endIndex {
            guard v.endIndex - i >= 2 else { return nil }
            let n = Int(UInt16(v[i]) << 8 | UInt16(v[i + 1]))
            i += 2
            guard v.endIndex - i >= n else { return nil }
            out.append(Array(v[i..<(i + n)]))
            i += n
        }
        return out
    }

    static func lengthPrefixedBytes(_ items: [[UInt8]]) -> [UInt8] {
        items.flatMap { be16(UInt16(Swift.min($0.count, 0xffff))) + $0.prefix(0xffff) }
    }

    /// Option 15 (RFC 8415 §21.15): each user class as text.
    public var userClasses: [String]? {
        self[code: DHCPv6OptionCode.userClass].flatMap { Self.lengthPrefixed($0[...]) }?.map { ByteText.display($0) }
    }

    /// Option 16 (RFC 8415 §21.16): the enterprise number and the class data items.
    public var vendorClass: (enterprise: UInt32, data: [[UInt8]])? {
        guard let v = self[code: DHCPv6OptionCode.vendorClass], v.count >= 4,
              let items = Self.lengthPrefixed(v[4...]) else { return nil }
        return (UInt32(v[0]) << 24 | UInt32(v[1]) << 16 | UInt32(v[2]) << 8 | UInt32(v[3]), items)
    }

    /// Option 79 (RFC 6939), from a relay: the link-layer type and address.
    public var clientLinkLayerAddress: (type: UInt16, address: [UInt8])? {
        guard let v = self[code: DHCPv6OptionCode.clientLinkLayerAddress], v.count >= 3 else { return nil }
        return (UInt16(v[0]) << 8 | UInt16(v[1]), Array(v[2...]))
    }

    /// Option 62 (RFC 5970 §3.4): type, major, minor (UNDI 3.16 is `(1, 3, 16)`).
    public var networkInterfaceID: (type: UInt8, major: UInt8, minor: UInt8)? {
        guard let v = self[code: DHCPv6OptionCode.networkInterfaceID], v.count == 3 else { return nil }
        return (v[0], v[1], v[2])
    }

    public var bootFileURL: String? {
        self[code: DHCPv6OptionCode.bootFileURL].map { String(decoding: $0, as: UTF8.self) }
    }

    /// Option 60 (RFC 5970 §3.2): the parameters, in order.
    public var bootFileParameters: [String]? {
        self[code: DHCPv6OptionCode.bootFileParameters].flatMap { Self.lengthPrefixed($0[...]) }?.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Option 13: the status and its message.
    public var status: (code: UInt16, message: String)? {
        guard let v = self[code: DHCPv6OptionCode.statusCode], v.count >= 2 else { return nil }
        return (UInt16(v[0]) << 8 | UInt16(v[1]), String(decoding: v[2...], as: UTF8.self))
    }

    /// Option 13's value.
    public static func statusValue(_ status: DHCPv6Status, _ message: String) -> [UInt8] {
        be16(status.rawValue) + Array(message.utf8.prefix(200))
    }

    /// Option 16's value: `enterprise` and each datum.
    public static func vendorClassValue(enterprise: UInt32, _ data: [[UInt8]]) -> [UInt8] {
        be32(enterprise) + lengthPrefixedBytes(data)
    }

    /// Option 60's value.
    public static func bootFileParametersValue(_ params: [String]) -> [UInt8] {
        lengthPrefixedBytes(params.map { Array($0.utf8) })
    }

    /// Option 8 in hundredths of a second.
    public var elapsedTime: UInt16? {
        guard let v = self[code: DHCPv6OptionCode.elapsedTime], v.count == 2 else { return nil }
        return UInt16(v[0]) << 8 | UInt16(v[1])
    }
}
