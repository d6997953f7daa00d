/// Why a datagram is not a TFTP packet we accept. Every case names the field that failed so a
/// dropped packet can be counted and logged by reason (`bootpolicy_tftp_dropped_total{reason}`).
public enum TFTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The datagram ended before `field` was complete.
    case truncated(field: String)
    /// A NUL-terminated string (`field`) had no terminator before the end of the datagram.
    case unterminated(field: String)
    /// The 2-byte opcode is not 1...6.
    case unknownOpcode(UInt16)
    /// RRQ/WRQ mode other than netascii, octet or mail (RFC 1350 section 5).
    case unsupportedMode(String)
    /// A request or OACK option had a name but no value (RFC 2347: they come in pairs).
    case unpairedOption(name: String)
    /// An empty string where RFC 1350 requires one (`field` is "filename" or "option name").
    case empty(field: String)
    /// Bytes after the last field of a fixed-size packet (ACK) or after an ERROR message.
    case trailingBytes(field: String)

    /// A short stable label for metrics dimensions.
    public var reason: String {
        switch self {
        case .truncated: return "truncated"
        case .unterminated: return "unterminated"
        case .unknownOpcode: return "unknown_opcode"
        case .unsupportedMode: return "bad_mode"
        case .unpairedOption: return "unpaired_option"
        case .empty: return "empty_field"
        case .trailingBytes: return "trailing_bytes"
        }
    }

    public var description: String {
        switch self {
        case .truncated(let field): return "TFTP packet truncated in \(field)"
        case .unterminated(let field): return "TFTP \(field) is not NUL-terminated"
        case .unknownOpcode(let op): return "TFTP opcode \(op) is unknown"
        case .unsupportedMode(let mode): return "TFTP mode '\(mode)' is not supported"
        case .unpairedOption(let name): return "TFTP option '\(name)' has no value"
        case .empty(let field): return "TFTP \(field) is empty"
        case .trailingBytes(let field): return "TFTP packet has bytes after \(field)"
        }
    }
}

/// The ERROR packet codes of RFC 1350 (0-7) and RFC 2347 (8). Unknown codes survive a decode.
public struct TFTPErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let notDefined = TFTPErrorCode(rawValue: 0)
    public static let fileNotFound = TFTPErrorCode(rawValue: 1)
    public static let accessViolation = TFTPErrorCode(rawValue: 2)
    public static let diskFull = TFTPErrorCode(rawValue: 3)
    public static let illegalOperation = TFTPErrorCode(rawValue: 4)
    public static let unknownTransferID = TFTPErrorCode(rawValue: 5)
    public static let fileExists = TFTPErrorCode(rawValue: 6)
    public static let noSuchUser = TFTPErrorCode(rawValue: 7)
    /// RFC 2347: the client or server refuses the option negotiation.
    public static let optionNegotiation = TFTPErrorCode(rawValue: 8)

    public var description: String { "\(rawValue)" }
}
