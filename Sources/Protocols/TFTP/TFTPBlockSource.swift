import NIOCore

/// Where a transfer's bytes come from: an open file (read with pread, never loaded whole) or
/// bytes a policy generated.
public enum TFTPContent: Sendable {
    case file(TFTPFile)
    case bytes([UInt8])

    var size: UInt64 {
        switch self {
        case .file(let file): return file.size
        case .bytes(let bytes): return UInt64(bytes.count)
        }
    }

    /// Reads raw bytes at `offset`; -1 on an I/O error, short at the end.
    func read(at offset: UInt64, count: Int, into destination: UnsafeMutableRawBufferPointer) -> Int {
        switch self {
        case .file(let file):
            return file.read(at: offset, count: count, into: destination)
        case .bytes(let bytes):
            guard offset < UInt64(bytes.count) else { return 0 }
            let n = min(count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { source in
                destination.baseAddress!.copyMemory(from: source.baseAddress! + Int(offset), byteCount: n)
            }
            return n
        }
    }
}

/// Produces the payload of any block of the current window, in octet or netascii form.
///
/// Octet blocks are read at `(block - 1) * blockSize`. Netascii (RFC 764: LF -> CR LF, CR -> CR
/// NUL) changes lengths, so the converter keeps, for each block it produced recently, the raw
/// offset and any half-written pair it started from; a window retransmission restarts from one
/// of those checkpoints. Memory stays bounded by the window, whatever the file size.
struct TFTPBlockSource {
    let content: TFTPContent
    let netascii: Bool
    let blockSize: Int

    private struct Checkpoint {
        var block: UInt64
        var rawOffset: UInt64
        var pending: UInt8?
    }
    private var checkpoints: [Checkpoint]
    private var raw: [UInt8]

    init(content: TFTPContent, netascii: Bool, blockSize: Int, windowSize: Int) {
        self.content = content
        self.netascii = netascii
        self.blockSize = blockSize
        if netascii {
            self.checkpoints = Array(repeating: Checkpoint(block: 0, rawOffset: 0, pending: nil), count: windowSize + 2)
            self.checkpoints[1 % checkpoints.count] = Checkpoint(block: 1, rawOffset: 0, pending: nil)
            self.raw = Array(repeating: 0, count: blockSize)
        } else {
            self.checkpoints = []
            self.raw = []
        }
    }

    /// Bytes on the wire: the file size for octet, the converted size for netascii.
    static func transferSize(of content: TFTPContent, netascii: Bool) -> UInt64? {
        guard netascii else { return content.size }
        var extra: UInt64 = 0
        var offset: UInt64 = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { content.read(at: offset, count: $0.count, into: $0) }
            if n < 0 { return nil }
            if n == 0 { break }
            for i in 0..<n where chunk[i] == 0x0A || chunk[i] == 0x0D { extra += 1 }
            offset += UInt64(n)
        }
        return offset + extra
    }

    /// The last block number (1-based, absolute) when it is known before sending.
    var lastBlock: UInt64? {
        netascii ? nil : content.size / UInt64(blockSize) + 1
    }

    /// Octet only: appends DATA packets for blocks `first ..< first + count` (stopping after a
    /// short block). Each packet's length goes to `lengths`. Returns the last payload length,
    /// or nil on an I/O error.
    ///
    /// File bytes come from a read-ahead window of at least `readAhead` bytes: one pread(2)
    /// serves several lock-step blocks or whole windows instead of one call per block.
    mutating func appendWindow(first: UInt64, count: Int, to buffer: inout ByteBuffer, lengths: inout [Int]) -> Int? {
        precondition(!netascii)
        let size = content.size
        let start = (first - 1) * UInt64(blockSize)
        let available = start >= size ? 0 : Int(min(UInt64(count * blockSize), size - start))
        if start < cachedFrom || start + UInt64(available) > cachedFrom + UInt64(cachedCount) {
            let want = Int(min(UInt64(max(available, Self.readAhead)), size - min(start, size)))
            if raw.count < want { raw = Array(repeating: 0, count: want) }
            let got = raw.withUnsafeMutableBytes { content.read(at: start, count: want, into: $0) }
            guard got >= available else { cachedCount = 0; return nil }
            cachedFrom = start
            cachedCount = got
        }
        var last = 0
        var offset = Int(start - cachedFrom)
        let end = offset + available
        for index in 0..<count {
            let length = min(blockSize, end - offset)
            let packetStart = buffer.writerIndex
            TFTPPacket.writeDataHeader(block: UInt16(truncatingIfNeeded: first + UInt64(index)), into: &buffer)
            _ = raw.withUnsafeBytes { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + length)])) }
            lengths.append(buffer.writerIndex - packetStart)
            offset += length
            last = length
            if length < blockSize { break }
        }
        return last
    }

    /// Bytes read ahead per pread(2) at least; per transfer, so 1,000 lock-step transfers hold
    /// 8 MB of it.
    static let readAhead = 8 * 1024
    private var cachedFrom: UInt64 = 0
    private var cachedCount = 0

    /// Appends the payload of `block` (1-based, absolute) to `buffer`. Returns its length, or
    /// nil on an I/O error or a block with no checkpoint (not part of the current window).
    mutating func append(block: UInt64, to buffer: inout ByteBuffer) -> Int? {
        if !netascii {
            let offset = (block - 1) * UInt64(blockSize)
            let size = content.size
            let count = offset >= size ? 0 : Int(min(UInt64(blockSize), size - offset))
            if count == 0 { return 0 }
            var result = 0
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { destination in
                result = content.read(at: offset, count: count, into: UnsafeMutableRawBufferPointer(rebasing: destination[0..<count]))
                return max(result, 0)
            }
            return result < 0 ? nil : result
        }
        let slot = Int(block % UInt64(checkpoints.count))
        guard checkpoints[slot].block == block else { return nil }
        var state = checkpoints[slot]
        var failed = false
        let size = blockSize
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out -> Int in
            var n = 0
            if let pending = state.pending {
                out[n] = pending; n += 1; state.pending = nil
            }
            while n < size {
                let want = size - n
                let got = raw.withUnsafeMutableBytes {
                    content.read(at: state.rawOffset, count: want, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]))
                }
                if got < 0 { failed = true; return n }
                if got == 0 { break }
                var consumed = 0
                while consumed < got && n < size {
                    let byte = raw[consumed]
                    consumed += 1
                    switch byte {
                    case 0x0A, 0x0D:
                        out[n] = 0x0D; n += 1
                        let second: UInt8 = byte == 0x0A ? 0x0A : 0x00
                        if n < size { out[n] = second; n += 1 } else { state.pending = second }
                    default:
                        out[n] = byte; n += 1
                    }
                }
                state.rawOffset += UInt64(consumed)
            }
            return n
        }
        if failed { return nil }
        let next = Int((block + 1) % UInt64(checkpoints.count))
        checkpoints[next] = Checkpoint(block: block + 1, rawOffset: state.rawOffset, pending: state.pending)
        return written
    }
}
