#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1

/// Collects one request (its body bounded by `maxBodyBytes`), has the server's worker threads
/// decide what to send, and writes it on the event loop. Keep-alive is honoured; NIO's
/// pipeline handler holds pipelined requests back until the previous response is written.
final class HTTPBootHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: HTTPServer
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// A body over the bound was refused (413); the rest of it is read and dropped until the
    /// request ends, then the connection closes. Answering and closing at once would reset the
    /// connection under a client still sending, and it would never see the 413.
    private var discarding = false
    private var discarded = 0
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
        let limit = server.configuration.maxBodyBytes
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            discarding = false
            discarded = 0
            let declared = head.headers.first(name: "content-length").flatMap { Int($0) }
            if let declared, declared > limit {
                refuseBody(context: context, head: head, size: "\(declared) bytes")
            } else if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                // curl and others wait for this before sending a larger body.
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
        case .body(var chunk):
            if discarding {
                discarded += chunk.readableBytes
                // Someone streaming for ever is cut off: a bound on what is read to be polite.
                if discarded > 16 * limit + (64 << 20) { context.close(promise: nil) }
                return
            }
            guard let head else { return }
            if body.count + chunk.readableBytes > limit {
                refuseBody(context: context, head: head, size: "more than \(limit) bytes")
                return
            }
            body.append(contentsOf: chunk.readBytes(length: chunk.readableBytes) ?? [])
        case .end:
            if discarding {
                context.close(promise: nil)
                return
            }
            guard let head else { return }
            self.head = nil
            // Answering (a file may stream for minutes) is not bound by the request clock.
            deadline?.cancel()
            deadline = nil
            let client = context.remoteAddress?.ipAddress ?? ""
            let request = HTTPRequestContext(method: head.method, uri: head.uri, headers: head.headers, body: body,
                                             clientAddress: client)
            body = []
            // A policy decision may wait for its state to be durable, and an API write waits
            // for its commit: neither may hold the event loop, which serves every connection.
            let server = self.server
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            server.workers.runIfActive(eventLoop: context.eventLoop) {
                server.respond(to: request)
            }.whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let response):
                    handler.write(response, for: head, context: context)
                case .failure:
                    // Only when the server is stopping: its worker pool is gone.
                    handler.write(.text(status: .serviceUnavailable, "the server is stopping\n"), for: head, context: context)
                }
            }
        }
    }

    /// 413 at once for a body over the bound, then drop the rest of it and close.
    private func refuseBody(context: ChannelHandlerContext, head: HTTPRequestHead, size: String) {
        discarding = true
        self.head = nil
        body = []
        server.countOversizedBody()
        let limit = server.configuration.maxBodyBytes
        let response = HTTPResponse.text(status: .payloadTooLarge,
                                         "request body too large: \(size), at most \(limit) bytes are accepted (http.max_body_bytes)\n")
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: response.contentType)
        h.add(name: "Server", value: "bootpolicy")
        h.add(name: "Connection", value: "close")
        guard case .bytes(let bytes) = response.body else { return }
        h.add(name: "Content-Length", value: "\(bytes.count)")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: h))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        // The rest of the body has the request clock to arrive; then the connection closes.
        arm(context, server.configuration.requestTimeout, "body refused and not finished within \(server.configuration.requestTimeout) s")
    }

    private func write(_ response: HTTPResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        if case .later(let later) = response.body {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            later.start { make in
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    let response = make()
                    if case .later = response.body {
                        handler.write(.text(status: .internalServerError, "a deferred response deferred again\n"), for: request, context: context)
                    } else {
                        handler.write(response, for: request, context: context)
                    }
                }
            }
            return
        }
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
        case .later:
            break  // answered when it completes, above
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
