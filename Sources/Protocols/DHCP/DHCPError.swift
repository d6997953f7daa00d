/// Everything that can be wrong with a DHCP message, naming the field that failed.
/// One error type for the DHCP module (cf. swift-nio-ssh `NIOSSHError`).
public enum DHCPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The packet ended inside a fixed header field (RFC 2131 §2: 236 bytes + 4-byte cookie).
    case truncated(field: String, needed: Int, available: Int)
    /// `op` is neither BOOTREQUEST (1) nor BOOTREPLY (2).
    case badOp(UInt8)
    /// `hlen` larger than the 16-byte `chaddr` field.
    case badHlen(UInt8)
    /// The four bytes after `file` are not 99.130.83.99 (RFC 2131 §3).
    case badMagicCookie(UInt32)
    /// An option's length byte points past the end of the area holding it.
    case optionOverrun(code: UInt8, area: String)
    /// Option 52 has a value other than 1, 2 or 3, or the wrong length (RFC 2131 §4.1).
    case badOverload(value: [UInt8])
    /// Option 52 found inside `file`/`sname`: an overload loop (RFC 2131 §4.1 forbids it).
    case overloadLoop(area: String)
    /// An option value does not have the shape its definition requires.
    case badOptionValue(code: UInt8, field: String, reason: String)
    /// A sub-option inside an encapsulating option (43, 82, 175) is malformed.
    case badSubOption(option: UInt8, subOption: UInt8, reason: String)
    /// Something else about a named field (fixtures, captures, summaries).
    case malformed(field: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(field, needed, available):
            return "truncated packet: field \(field) needs \(needed) bytes, \(available) left"
        case let .badOp(op): return "bad op \(op) (expected 1 request or 2 reply)"
        case let .badHlen(hlen): return "bad hlen \(hlen) (chaddr holds at most 16)"
        case let .badMagicCookie(cookie):
            return "wrong magic cookie 0x\(String(cookie, radix: 16)) (expected 0x63825363)"
        case let .optionOverrun(code, area): return "option \(code) runs past the end of \(area)"
        case let .badOverload(value): return "bad option 52 overload value \(Hex.encode(value))"
        case let .overloadLoop(area): return "option 52 overload found inside \(area)"
        case let .badOptionValue(code, field, reason): return "option \(code) \(field): \(reason)"
        case let .badSubOption(option, sub, reason): return "option \(option) sub-option \(sub): \(reason)"
        case let .malformed(field, reason): return "\(field): \(reason)"
        }
    }
}
