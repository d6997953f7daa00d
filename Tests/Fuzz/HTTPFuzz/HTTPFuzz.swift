import Foundation
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Protocols

/// The HTTP request path: NIO's request decoder (the server's pipeline), the request context
/// (path, percent-decoding, query), `HTTPServer.respond(to:)` with static files from a root and
/// a decider the request steers, and the Range header parser.
/// Input: one control byte. Bit 0 clear: the rest is raw bytes on a connection (up to 8
/// requests are answered). Bit 0 set: the rest is `URI\nRANGE\nMETHOD`, given to the server
/// directly, so URIs NIO would refuse reach the path code too.
/// A query parameter `policy` makes the decider answer, from the query: `path` (a file under the
/// root), `content`, `type`, `status`, `refuse`.
/// Checks: a file served is a regular file inside the root (the root holds symlinks out of it, a
/// FIFO and a directory; "outside" names the forbidden files); a path with a NUL is refused
/// with 400; a Range gives 0 <= start <= end < size or whole/unsatisfiable, never a range
/// outside the file, for the file's size and for 0, 1 and 1500 bytes.
enum HTTPFuzz {
    static let base = NSTemporaryDirectory() + "bootpolicy-httpfuzz-\(getpid())"
    static let server: HTTPServer = {
        let fm = FileManager.default
        try? fm.createDirectory(atPath: base + "/root/sub", withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: base + "/outside", withIntermediateDirectories: true)
        _ = fm.createFile(atPath: base + "/root/ipxe.efi", contents: Data(repeating: 0x55, count: 1500))
        _ = fm.createFile(atPath: base + "/root/boot.ipxe", contents: Data("#!ipxe\n".utf8))
        _ = fm.createFile(atPath: base + "/root/empty", contents: Data())
        _ = fm.createFile(atPath: base + "/root/sub/vmlinuz", contents: Data("kernel".utf8))
        _ = fm.createFile(atPath: base + "/outside/secret", contents: Data("secret".utf8))
        try? fm.createSymbolicLink(atPath: base + "/root/escape", withDestinationPath: "../outside")
        try? fm.createSymbolicLink(atPath: base + "/root/secret", withDestinationPath: base + "/outside/secret")
        try? fm.createSymbolicLink(atPath: base + "/root/kernel", withDestinationPath: "sub/vmlinuz")
        mkfifo(base + "/root/fifo", 0o644)
        atexit { try? FileManager.default.removeItem(atPath: HTTPFuzz.base) }
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        return try! HTTPServer(
            configuration: .init(host: "127.0.0.1", port: 0, root: base + "/root", workerThreads: 1),
            decider: QueryDecider(), routes: ["/healthz": { _ in .text("ok\n") }],
            group: EmbeddedEventLoop(), logger: logger)
    }()
    static let rootPath = (try! ConfinedRoot(path: base + "/root")).path

    static func run(_ input: [UInt8]) {
        _ = server
        guard let control = input.first else { return }
        let rest = Array(input.dropFirst())
        if control & 1 != 0 {
            let fields = rest.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            var headers = HTTPHeaders()
            if fields.count > 1 { headers.add(name: "Range", value: fields[1]) }
            let method = fields.count > 2 ? HTTPMethod(rawValue: fields[2]) : .GET
            answer(HTTPRequestContext(method: method, uri: fields.first ?? "/", headers: headers, clientAddress: "192.168.77.50"))
            if fields.count > 1 { checkRange(fields[1], size: 1500) }
            return
        }
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        do {
            try channel.writeInbound(ByteBuffer(bytes: rest))
        } catch {
            // NIO's error handler answers 400; what was decoded before still counts.
        }
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var answered = 0
        while answered < 8, let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let h): head = h; body = []
            case .body(var chunk): if body.count < 1 << 20 { body += chunk.readBytes(length: chunk.readableBytes) ?? [] }
            case .end:
                guard let h = head else { continue }
                head = nil
                answered += 1
                answer(HTTPRequestContext(method: h.method, uri: h.uri, headers: h.headers, body: body, clientAddress: "192.168.77.50"))
                for range in h.headers["range"] { checkRange(range, size: 1500) }
            }
        }
    }

    static func answer(_ context: HTTPRequestContext) {
        let response = server.respond(to: context)
        if context.path.utf8.contains(0), context.path != "/healthz" {
            fuzzCheck(response.status == .badRequest, "a path with a NUL got \(response.status)")
        }
        switch response.body {
        case .file(let file, let range):
            fuzzCheck(file.path.hasPrefix(rootPath + "/"), "\(context.path) served \(file.path), outside \(rootPath)")
            fuzzCheck(!file.path.contains("/outside/") && !file.path.hasSuffix("/fifo") && !file.path.hasSuffix("/sub"),
                      "\(context.path) served \(file.path)")
            checkRange(range, size: Int(file.size))
        case .bytes, .later:
            break
        }
    }

    static func checkRange(_ header: String?, size: Int) {
        for size in [size, 0, 1, 1500] {
            switch ByteRange(header: header, size: size) {
            case .whole, .unsatisfiable: break
            case .partial(let start, let end):
                fuzzCheck(start >= 0 && start <= end && end < size, "Range \(String(describing: header)) of \(size) bytes gave \(start)-\(end)")
            }
        }
    }
}

/// Answers only requests with a `policy` query parameter, with what the query says.
struct QueryDecider: BootDecider {
    func decide(_ request: BootRequest) -> BootDecision? {
        guard request.query["policy"] != nil else { return nil }
        return BootDecision(
            content: request.query["content"].map { Array($0.utf8) }, contentType: request.query["type"],
            path: request.query["path"], refuse: request.query["refuse"],
            status: request.query["status"].flatMap { Int($0) }, policy: "fuzz")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    HTTPFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(HTTPFuzz.run) } }
#endif
