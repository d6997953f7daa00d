import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for `bootpolicy state`: one request per connection to a running
/// server's control API, bounded in time. http:// only; a server behind TLS is reached with
/// curl (docs/api.md) until the HTTPS work lands.
struct APIClient {
    struct Response {
        var status: Int
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let host: String
    let port: Int
    let basePath: String
    let token: String?
    var timeout: TimeAmount = .seconds(15)

    /// `http://host[:port][/prefix]`.
    init(server: String, token: String?) throws {
        guard let url = URL(string: server), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw Failure(description: "--server \(server): expected http://HOST[:PORT]")
        }
        guard scheme == "http" else {
            throw Failure(description: "--server \(server): only http:// is spoken by this command (use curl for https)")
        }
        self.host = host
        self.port = url.port ?? 80
        let path = url.path
        self.basePath = path.hasSuffix("/") ? String(path.dropLast()) : path
        self.token = token
    }

    func send(_ method: HTTPMethod, _ path: String, body: String? = nil) throws -> Response {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let collector = ResponseCollector(promise: group.next().makePromise())
        let channel: Channel
        do {
            channel = try ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(collector) }
                }
                .connect(host: host, port: port).wait()
        } catch {
            let failure = Failure(description: "cannot reach \(host):\(port): \(error)")
            collector.promise.fail(failure)
            throw failure
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "User-Agent", value: "bootpolicy/\(BootPolicyVersion.number)")
        headers.add(name: "Connection", value: "close")
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let bytes = body.map { Array($0.utf8) } ?? []
        if body != nil {
            headers.add(name: "Content-Type", value: "application/json")
        }
        headers.add(name: "Content-Length", value: "\(bytes.count)")
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: basePath + path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !bytes.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(channel.allocator.buffer(bytes: bytes))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            collector.finish(.failure(Failure(description: "no answer from \(host):\(port) within \(timeout.nanoseconds / 1_000_000_000) s")))
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        let response = try collector.promise.futureResult.wait()
        channel.close(promise: nil)
        return response
    }

    private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<Response>
        private var status = 0
        private var body: [UInt8] = []
        private var done = false

        init(promise: EventLoopPromise<Response>) { self.promise = promise }

        /// The first outcome wins (the answer, a close, an error or the timeout); all run on
        /// the channel's event loop.
        func finish(_ result: Result<Response, Error>) {
            guard !done else { return }
            done = true
            promise.completeWith(result)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                // 100 Continue is not the answer.
                if head.status.code >= 200 { status = Int(head.status.code) }
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                if status >= 200 { finish(.success(Response(status: status, body: String(decoding: body, as: UTF8.self)))) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            finish(.failure(Failure(description: "the server closed the connection before answering")))
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            finish(.failure(Failure(description: "\(error)")))
            context.close(promise: nil)
        }
    }
}
