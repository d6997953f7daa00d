import NIOCore

/// Transfer mode of a read or write request (RFC 1350 section 5; compared case-insensitively).
public enum TFTPMode: String, Sendable, Equatable {
    case netascii, octet, mail
}

/// One option of a request or OACK (RFC 2347). Names are kept lower-cased; values as sent.
public struct TFTPOption: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name.lowercased()
        self.value = value
    }
}

/// A read or write request: file name, mode and the options in the order they were sent.
public struct TFTPRequest: Sendable, Equatable {
    public var filename: String
    public var mode: TFTPMode
    public var options: [TFTPOption]
    public init(filename: String, mode: TFTPMode, options: [TFTPOption] = []) {
        self.filename = filename
        self.mode = mode
        self.options = options
    }
}

/// A TFTP packet as a pure value (RFC 1350, RFC 2347 OACK). `init(from:)` and `encode(into:)`
/// are paired: decoding what was encoded gives the same value. Decoding never traps; bad input
/// throws a `TFTPError` naming the field.
public enum TFTPPacket: Sendable, Equatable {
    case readRequest(TFTPRequest)
    case writeRequest(TFTPRequest)
    /// DATA: block number and up to blksize bytes (a view into the received datagram).
    case data(block: UInt16, payload: ByteBuffer)
    case ack(block: UInt16)
    case error(code: TFTPErrorCode, message: String)
    case optionAck([TFTPOption])

    public enum Opcode: UInt16, Sendable {
        case rrq = 1, wrq = 2, data = 3, ack = 4, error = 5, oack = 6
    }

    public var opcode: Opcode {
        switch self {
        case .readRequest: return .rrq
        case .writeRequest: return .wrq
        case .data: return .data
        case .ack: return .ack
        case .error: return .error
        case .optionAck: return .oack
        }
    }

    /// Decodes one datagram. Consumes the buffer's readable bytes.
    public init(from buffer: inout ByteBuffer) throws(TFTPError) {
        guard let raw = buffer.readInteger(as: UInt16.self) else { throw .truncated(field: "opcode") }
        guard let opcode = Opcode(rawValue: raw) else { throw .unknownOpcode(raw) }
        switch opcode {
        case .rrq, .wrq:
            let request = try Self.readRequest(from: &buffer)
            self = opcode == .rrq ? .readRequest(request) : .writeRequest(request)
        case .data:
            guard let block = buffer.readInteger(as: UInt16.self) else { throw .truncated(field: "block") }
            // RFC 1350 section 5: DATA carries 0...blksize bytes; any length is structurally valid.
            self = .data(block: block, payload: buffer.readSlice(length: buffer.readableBytes)!)
        case .ack:
            guard let block = buffer.readInteger(as: UInt16.self) else { throw .truncated(field: "block") }
            guard buffer.readableBytes == 0 else { throw .trailingBytes(field: "block") }
            self = .ack(block: block)
        case .error:
            guard let code = buffer.readInteger(as: UInt16.self) else { throw .truncated(field: "error code") }
            // Some stacks omit the terminating NUL of the message; accept the rest as the message.
            let message = buffer.readNULTerminatedString() ?? buffer.readString(length: buffer.readableBytes) ?? ""
            self = .error(code: TFTPErrorCode(rawValue: code), message: message)
        case .oack:
            self = .optionAck(try Self.readOptions(from: &buffer))
        }
    }

    /// Decodes a datagram without consuming the caller's buffer.
    public init(decoding buffer: ByteBuffer) throws(TFTPError) {
        var copy = buffer
        try self.init(from: &copy)
    }

    /// Appends the wire form. Returns the number of bytes written.
    @discardableResult
    public func encode(into buffer: inout ByteBuffer) -> Int {
        let start = buffer.writerIndex
        buffer.writeInteger(self.opcode.rawValue)
        switch self {
        case .readRequest(let request), .writeRequest(let request):
            buffer.writeNULTerminated(request.filename)
            buffer.writeNULTerminated(request.mode.rawValue)
            for option in request.options {
                buffer.writeNULTerminated(option.name)
                buffer.writeNULTerminated(option.value)
            }
        case .data(let block, var payload):
            buffer.writeInteger(block)
            buffer.writeBuffer(&payload)
        case .ack(let block):
            buffer.writeInteger(block)
        case .error(let code, let message):
            buffer.writeInteger(code.rawValue)
            buffer.writeNULTerminated(message)
        case .optionAck(let options):
            for option in options {
                buffer.writeNULTerminated(option.name)
                buffer.writeNULTerminated(option.value)
            }
        }
        return buffer.writerIndex - start
    }

    /// The 4-byte DATA header, written by the server's hot path straight into its send buffer.
    @inlinable
    public static func writeDataHeader(block: UInt16, into buffer: inout ByteBuffer) {
        buffer.writeMultipleIntegers(Opcode.data.rawValue, block)
    }

    private static func readRequest(from buffer: inout ByteBuffer) throws(TFTPError) -> TFTPRequest {
        guard let filename = buffer.readNULTerminatedString() else { throw .unterminated(field: "filename") }
        guard !filename.isEmpty else { throw .empty(field: "filename") }
        guard let modeText = buffer.readNULTerminatedString() else { throw .unterminated(field: "mode") }
        guard let mode = TFTPMode(rawValue: modeText.lowercased()) else { throw .unsupportedMode(modeText) }
        return TFTPRequest(filename: filename, mode: mode, options: try readOptions(from: &buffer))
    }

    /// RFC 2347: name/value pairs, each NUL-terminated, up to the end of the datagram.
    private static func readOptions(from buffer: inout ByteBuffer) throws(TFTPError) -> [TFTPOption] {
        var options: [TFTPOption] = []
        while buffer.readableBytes > 0 {
            guard let name = buffer.readNULTerminatedString() else { throw .unterminated(field: "option name") }
            guard !name.isEmpty else { throw .empty(field: "option name") }
            guard let value = buffer.readNULTerminatedString() else {
                if buffer.readableBytes == 0 { throw .unpairedOption(name: name) }
                throw .unterminated(field: "option value")
            }
            options.append(TFTPOption(name: name, value: value))
        }
        return options
    }
}

extension ByteBuffer {
    /// Reads bytes up to a NUL and consumes the NUL; nil (nothing consumed) if there is none.
    @usableFromInline
    mutating func readNULTerminatedString() -> String? {
        guard let nul = self.readableBytesView.firstIndex(of: 0) else { return nil }
        let length = nul - self.readerIndex
        let string = self.readString(length: length) ?? String(decoding: self.readBytes(length: length) ?? [], as: UTF8.self)
        self.moveReaderIndex(forwardBy: 1)
        return string
    }

    @usableFromInline
    mutating func writeNULTerminated(_ string: String) {
        self.writeString(string)
        self.writeInteger(UInt8(0))
    }
}
