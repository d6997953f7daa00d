import Foundation
import FuzzSupport
import NIOCore
import Protocols

/// TFTP packet decoding, option negotiation (RFC 2347/2348/2349/7440) and the confinement of
/// the requested name to the root, as the server runs them for an RRQ.
/// Input: one control byte (bits 0-1 pick the server's block size limit, bits 2-3 its window
/// limit, bit 4 an empty file), then the datagram.
/// Checks: decode never traps and throws only TFTPError; a decoded packet re-encodes to the same
/// packet; a negotiated block size and window stay within the client's ask, the server's limits
/// and the window byte cap, every acknowledged option was asked for, once, and the OACK
/// round-trips; a name `relativeName` accepts has no "..", no empty or absolute part and no NUL;
/// a file opened through the root is a regular file inside it (the root holds symlinks that
/// point out of it, a FIFO and a directory).
enum TFTPFuzz {
    static let root: ConfinedRoot = {
        let base = NSTemporaryDirectory() + "bootpolicy-tftpfuzz-\(getpid())"
        let fm = FileManager.default
        try? fm.createDirectory(atPath: base + "/root/sub", withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        _ = fm.createFile(atPath: base + "/root/undionly.kpxe", contents: Data(repeating: 0x55, count: 1500))
        _ = fm.createFile(atPath: base + "/root/sub/ipxe.efi", contents: Data("efi".utf8))
        _ = fm.createFile(atPath: base + "/outside/secret", contents: Data("secret".utf8))
        try? fm.createSymbolicLink(atPath: base + "/root/escape", withDestinationPath: "../outside")
        try? fm.createSymbolicLink(atPath: base + "/root/secret", withDestinationPath: base + "/outside/secret")
        try? fm.createSymbolicLink(atPath: base + "/root/inside", withDestinationPath: "sub/ipxe.efi")
        mkfifo(base + "/root/fifo", 0o644)
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "bootpolicy-tftpfuzz-\(getpid())") }
        return try! ConfinedRoot(path: base + "/root")
    }()

    static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let buffer = ByteBuffer(bytes: input.dropFirst())
        let packet: TFTPPacket
        do {
            packet = try TFTPPacket(decoding: buffer)
        } catch {
            return  // typed throws: always a TFTPError
        }
        var out = ByteBuffer()
        let written = packet.encode(into: &out)
        fuzzCheck(written == out.readableBytes, "encode reported \(written) of \(out.readableBytes) bytes")
        let again = try? TFTPPacket(decoding: out)
        fuzzCheck(again == packet, "round trip changed the packet: \(packet) -> \(String(describing: again))")

        guard case .readRequest(let request) = packet else { return }
        let maxBlockSize = [512, 1468, 8192, 65464][Int(control & 3)]
        let maxWindowSize = [1, 4, 64, 65535][Int(control >> 2 & 3)]
        let size: UInt64 = control & 0x10 != 0 ? 0 : 1500
        do {
            let options = try TFTPTransferOptions.negotiate(
                request.options, maxBlockSize: maxBlockSize, maxWindowSize: maxWindowSize, transferSize: { size })
            fuzzCheck(TFTPTransferOptions.blockSizeRange.contains(options.blockSize), "block size \(options.blockSize)")
            fuzzCheck(options.blockSize <= max(maxBlockSize, TFTPTransferOptions.defaultBlockSize), "block size \(options.blockSize) over the server's \(maxBlockSize)")
            fuzzCheck(options.windowSize >= 1 && options.windowSize <= maxWindowSize, "window \(options.windowSize) (max \(maxWindowSize))")
            fuzzCheck(options.windowSize == 1 || options.windowSize * options.blockSize <= TFTPTransferOptions.maxWindowBytes,
                      "window \(options.windowSize) x \(options.blockSize) over the byte cap")
            var seen: Set<String> = []
            for ack in options.acknowledged {
                fuzzCheck(seen.insert(ack.name).inserted, "\(ack.name) acknowledged twice")
                fuzzCheck(request.options.contains { $0.name == ack.name }, "\(ack.name) acknowledged but not asked for")
                if ack.name == "blksize" || ack.name == "windowsize" || ack.name == "timeout" {
                    let asked = request.options.first { $0.name == ack.name }.flatMap { Int($0.value) }
                    fuzzCheck(Int(ack.value).map { $0 <= (asked ?? 0) } == true, "\(ack.name)=\(ack.value) more than asked \(String(describing: asked))")
                }
            }
            if size == 0 { fuzzCheck(!seen.contains("tsize"), "tsize 0 acknowledged") }
            var oack = ByteBuffer()
            TFTPPacket.optionAck(options.acknowledged).encode(into: &oack)
            if !options.acknowledged.isEmpty {
                fuzzCheck((try? TFTPPacket(decoding: oack)) == .optionAck(options.acknowledged), "OACK does not round-trip")
            }
        } catch {
            // refused: the server answers with error 8
        }

        switch ConfinedRoot.relativeName(request.filename) {
        case .success(let name):
            let parts = name.split(separator: "/", omittingEmptySubsequences: false)
            fuzzCheck(!name.hasPrefix("/") && !name.contains("\\") && !name.utf8.contains(0), "relative name \(name)")
            fuzzCheck(!parts.contains("..") && !parts.contains("") && !parts.contains("."), "relative name \(name)")
        case .failure:
            break
        }
        if case .success(let file) = root.open(request.filename) {
            fuzzCheck(file.path.hasPrefix(root.path + "/"), "\(request.filename) opened \(file.path), outside \(root.path)")
            fuzzCheck(!file.path.contains("outside") && !file.path.hasSuffix("/fifo"), "\(request.filename) opened \(file.path)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    TFTPFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(TFTPFuzz.run) } }
#endif
