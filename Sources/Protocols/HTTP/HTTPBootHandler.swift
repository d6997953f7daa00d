#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1

/// Collects one request, asks the server what to send, writes it. Bodies of requests are
/// ignored (boot clients only GET/HEAD); keep-alive is honoured.
final class HTTPBootHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: HTTPServer
    private var head: HTTPRequestHead?
    /// Closes the connection when the request in progress (or the next one) is late.
    private var deadline: Scheduled<Void>?

    init(server: HTTPServer) { self.server = server }

    /// Closes the connection `seconds` from now unless re-armed or cancelled first. The clock
    /// runs from the connection's start (`requestTimeout`) or from the last response
    /// (`idleTimeout`) until a request has arrived whole; the decoder reports a request only
    /// once its head is complete, so a trickled head is cut by this same clock.
    private func arm(_ context: ChannelHandlerContext, _ seconds: Double, _ what: String) {
        deadline?.cancel()
        let channel = context.channel
        let server = self.server
        deadline = context.eventLoop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
            server.countTimeout()
            server.logger.debug("http: closing a connection: \(what)",
                                metadata: ["client": "\(channel.remoteAddress?.ipAddress ?? "?")"])
            channel.close(promise: nil)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, server.configuration.requestTimeout, "no whole request within \(server.configuration.requestTimeout) s")
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added by the child initializer after the channel went active: arm here too.
        if context.channel.isActive {
            arm(context, server.configuration.requestTimeout, "no whole request within \(server.configuration.requestTimeout) s")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            // Answering (a file may stream for minutes) is not bound by the request clock.
            deadline?.cancel()
            deadline = nil
            let client = context.remoteAddress?.ipAddress ?? ""
            let request = HTTPRequestContext(method: head.method, uri: head.uri, headers: head.headers, clientAddress: client)
            let response = server.respond(to: request)
            write(response, for: head, context: context)
        }
    }

    private func write(_ response: HTTPResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Server", value: "bootpolicy")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let isHead = request.method == .HEAD
        var status = response.status

        switch response.body {
        case .bytes(let bytes):
            headers.add(name: "Content-Length", value: "\(bytes.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            if !isHead { context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil) }
        case .file(let file, let rangeHeader):
            let size = Int(file.size)
            headers.add(name: "Accept-Ranges", value: "bytes")
            var start = 0, end = size - 1
            switch ByteRange(header: rangeHeader, size: size) {
            case .whole: break
            case .partial(let s, let e):
                status = .partialContent
                start = s; end = e
                headers.add(name: "Content-Range", value: "bytes \(s)-\(e)/\(size)")
            case .unsatisfiable:
                headers.add(name: "Content-Range", value: "bytes */\(size)")
                headers.add(name: "Content-Length", value: "0")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .rangeNotSatisfiable, headers: headers))), promise: nil)
                finish(context: context, keepAlive: keepAlive)
                return
            }
            let length = max(0, end - start + 1)
            headers.add(name: "Content-Length", value: "\(length)")
            if isHead || length == 0 {
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
                break
            }
            // The region streams with sendfile from its own descriptor, closed when written.
            let fd = dup(file.descriptor)
            guard fd >= 0 else {
                server.logger.warning("http: cannot read file", metadata: ["path": "\(file.path)", "errno": "\(errno)"])
                let body = Array("cannot read \(file.path)\n".utf8)
                var h = HTTPHeaders([("Content-Type", "text/plain"), ("Content-Length", "\(body.count)")])
                h.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .internalServerError, headers: h))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                break
            }
            let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            let region = FileRegion(fileHandle: handle, readerIndex: start, endIndex: end + 1)
            context.write(wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { _ in try? handle.close() }
        }
        finish(context: context, keepAlive: keepAlive)
    }

    private func finish(context: ChannelHandlerContext, keepAlive: Bool) {
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.whenComplete { _ in context.close(promise: nil) }
            return
        }
        // Written: the next request has `idleTimeout` to arrive whole.
        done.whenSuccess { [self] in
            guard context.channel.isActive else { return }
            arm(context, server.configuration.idleTimeout, "idle for \(server.configuration.idleTimeout) s")
        }
    }

    /// A request the HTTP decoder could not parse: NIO's error handler has answered 400;
    /// close, so the rest of the garbage is not read as another request.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
