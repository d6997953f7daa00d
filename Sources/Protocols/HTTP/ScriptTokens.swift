import Crypto
import Foundation

/// Unguessable per-client tokens for URLs that name a machine (`/boot.ipxe?mac=...&token=...`).
///
/// A generated script carries what only its machine should read (install tokens, kickstart
/// URLs), and anyone on the LAN can type `?mac=` with another machine's address. A policy puts
/// `ipxe.script_token(mac)` in the URL it hands out at DHCP time; the HTTP server believes a
/// `mac` in the query only with that token beside it. A token is the first 128 bits of
/// HMAC-SHA256 over the normalized MAC under the server's key (as pixiecore signs its URLs),
/// in lower-case hex: it does not expire, and changing the key revokes every one.
public struct ScriptTokens: Sendable {
    /// HMAC already keyed: a copy signs one message without hashing the key's pads again.
    private let keyed: HMAC<SHA256>
    /// Hex characters in a token.
    public static let length = 32

    public init(key: [UInt8]) {
        self.keyed = HMAC<SHA256>(key: SymmetricKey(data: key))
    }

    /// A key of 32 random bytes, new each time: tokens from it die with the process.
    public static func random() -> ScriptTokens {
        ScriptTokens(key: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }

    /// The fixed key `bootpolicy test` runs policies with, so a policy test can compare whole
    /// URLs. Not a secret; never used by `serve`.
    public static let forPolicyTests = ScriptTokens(key: Array("bootpolicy policy tests: a known key, not a secret".utf8))

    /// The token for `mac` (any spelling `MACAddress.normalize` accepts), or nil for a non-MAC.
    public func token(for mac: String) -> String? {
        guard let normalized = MACAddress.normalize(mac) else { return nil }
        return Self.hex(code(normalized))
    }

    /// Whether `token` is the one for `mac`. Compares in constant time.
    public func verify(_ token: String, mac: String) -> Bool {
        guard let normalized = MACAddress.normalize(mac), let given = Self.bytes(ofHex: token) else { return false }
        let expected = code(normalized)
        var difference: UInt8 = 0
        for (a, b) in zip(expected, given) { difference |= a ^ b }
        return difference == 0
    }

    private func code(_ normalized: String) -> [UInt8] {
        // Domain-separated and versioned, so the key can sign other things later without a
        // token for one thing passing for another.
        var mac = keyed
        mac.update(data: Array("bootpolicy script v1\0\(normalized)".utf8))
        return Array(Array(mac.finalize()).prefix(Self.length / 2))
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Exactly `length` hex digits (either case), else nil.
    private static func bytes(ofHex text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == length else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(length / 2)
        var high: UInt8 = 0
        for (i, c) in utf8.enumerated() {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            if i % 2 == 0 { high = v << 4 } else { out.append(high | v) }
        }
        return out
    }
}

/// When the HTTP server believes the `mac` a request's query names (`http.script_access`).
/// Whatever is believed becomes the request's MAC: the client whose generated script is served
/// and whose facts and state the policies see. An unbelieved `mac` is ignored, and the MAC is
/// the one the requester's own address maps to (its DHCP exchange or the neighbour table), so a
/// machine always gets its own script and never another's.
public enum ScriptAccess: Sendable {
    /// `mac` counts only with its `token` (the default).
    case token(ScriptTokens)
    /// `mac` counts only when it is the MAC of the address the request came from.
    case neighbour
    /// `mac` counts as given (labs; anyone who can reach the server reads any script).
    case open

    public var name: String {
        switch self {
        case .token: "token"
        case .neighbour: "neighbour"
        case .open: "open"
        }
    }
}
