/// The outcome of option negotiation for one read request (RFC 2347, 2348, 2349, 7440): the
/// values the transfer runs with and the options to acknowledge in an OACK (empty: plain
/// RFC 1350, no OACK).
public struct TFTPTransferOptions: Sendable, Equatable {
    /// RFC 1350 block size, and the limits of RFC 2348.
    public static let defaultBlockSize = 512
    public static let blockSizeRange = 8...65464
    public static let timeoutRange = 1...255
    public static let windowSizeRange = 1...65535
    /// The server never keeps more than this many bytes of one window in flight.
    public static let maxWindowBytes = 1 << 20

    public var blockSize: Int
    /// Seconds the client asked for (RFC 2349); nil: the server's default.
    public var timeoutSeconds: Int?
    public var windowSize: Int
    /// Options echoed in the OACK, in the client's order.
    public var acknowledged: [TFTPOption]

    public init(blockSize: Int = defaultBlockSize, timeoutSeconds: Int? = nil, windowSize: Int = 1,
                acknowledged: [TFTPOption] = []) {
        self.blockSize = blockSize
        self.timeoutSeconds = timeoutSeconds
        self.windowSize = windowSize
        self.acknowledged = acknowledged
    }

    /// A value the server refuses with ERROR 8 (RFC 2347): not a decimal number or below the
    /// option's minimum. Values above a maximum are clamped instead.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var option: String
        public var value: String
        public var description: String { "option \(option)=\(value) is not acceptable" }
    }

    /// Negotiates the client's options. Unknown options are ignored (not echoed); the first of
    /// duplicated options wins. `transferSize` is the size to announce for `tsize` (nil or 0: the
    /// option is not acknowledged).
    public static func negotiate(
        _ options: [TFTPOption], maxBlockSize: Int, maxWindowSize: Int,
        transferSize: () -> UInt64?
    ) throws(Refusal) -> TFTPTransferOptions {
        var result = TFTPTransferOptions()
        var seen: Set<String> = []
        for option in options where seen.insert(option.name).inserted {
            switch option.name {
            case "blksize":
                let value = try number(option)
                guard value >= blockSizeRange.lowerBound else { throw Refusal(option: option.name, value: option.value) }
                let limit = max(blockSizeRange.lowerBound, min(maxBlockSize, blockSizeRange.upperBound))
                result.blockSize = min(value, limit)
                result.acknowledged.append(TFTPOption(name: "blksize", value: String(result.blockSize)))
            case "timeout":
                let value = try number(option)
                guard timeoutRange.contains(value) else { throw Refusal(option: option.name, value: option.value) }
                result.timeoutSeconds = value
                result.acknowledged.append(TFTPOption(name: "timeout", value: String(value)))
            case "tsize":
                // RFC 2349: a read request carries tsize 0; the OACK carries the real size.
                _ = try number(option)
                // An empty file's tsize is left out: curl (lib/tftp.c) rejects "tsize 0" in an
                // OACK as illegal, and RFC 2347 lets a server leave any option unacknowledged.
                if let size = transferSize(), size > 0 {
                    result.acknowledged.append(TFTPOption(name: "tsize", value: String(size)))
                }
            case "windowsize":
                let value = try number(option)
                guard value >= windowSizeRange.lowerBound else { throw Refusal(option: option.name, value: option.value) }
                result.windowSize = min(value, max(1, maxWindowSize))
                result.acknowledged.append(TFTPOption(name: "windowsize", value: String(result.windowSize)))
            default:
                continue
            }
        }
        // Bound the bytes one window holds, whatever the client asked for.
        let windowCap = max(1, maxWindowBytes / result.blockSize)
        if result.windowSize > windowCap, let index = result.acknowledged.firstIndex(where: { $0.name == "windowsize" }) {
            result.windowSize = windowCap
            result.acknowledged[index].value = String(windowCap)
        }
        return result
    }

    /// A decimal number of at most 10 digits (no sign, no spaces).
    private static func number(_ option: TFTPOption) throws(Refusal) -> Int {
        let utf8 = option.value.utf8
        guard !utf8.isEmpty, utf8.count <= 10, utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = Int(option.value) else {
            throw Refusal(option: option.name, value: option.value)
        }
        return value
    }
}
