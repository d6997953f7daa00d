#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// Collects one request (its body bounded by `maxBodyBytes`), decides what to send on the
/// event loop when that cannot block (else on the server's worker threads), and writes it on
/// the event loop. Keep-alive is honoured; NIO's
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
    /// When the connection closes unless a whole request arrives first (the request in
    /// progress, or the next one is late); nil: not waiting.
    private var deadline: (at: NIODeadline, wait: Wait)?
    /// The one task that enforces `deadline`, and when it runs. Re-arming for a later time
    /// (every response does) only moves `deadline`: the task, when it runs early, schedules
    /// itself again. Cancelling and scheduling a task per request was a cost of its own.
    private var timer: (task: Scheduled<Void>, at: NIODeadline)?

    /// A TLS connection: its requests say `https`, and files cannot go by sendfile.
    private let secure: Bool
    init(server: HTTPServer, secure: Bool = false) {
        self.server = server
        self.secure = secure
    }

    /// Files up to this size are read and sent from memory, larger ones with sendfile.
    static let inlineFileBytes = 64 << 10

    /// What a connection's clock is waiting for.
    private enum Wait {
        /// A whole request, from the connection's start (`requestTimeout`).
        case request
        /// The next request after a response (`idleTimeout`).
        case idle
        /// The rest of a body refused with 413 (`requestTimeout`).
        case refusedBody

        func seconds(_ c: HTTPServer.Configuration) -> Double { self == .idle ? c.idleTimeout : c.requestTimeout }

        func reason(_ c: HTTPServer.Configuration) -> String {
            switch self {
            case .request: return "no whole request within \(c.requestTimeout) s"
            case .idle: return "idle for \(c.idleTimeout) s"
            case .refusedBody: return "body refused and not finished within \(c.requestTimeout) s"
            }
        }
    }

    /// Closes the connection when `wait` is over unless re-armed or disarmed first. The clock
    /// runs from the connection's start or from the last response until a request has arrived
    /// whole; the decoder reports a request only once its head is complete, so a trickled head
    /// is cut by this same clock. (The reason is worded only if the clock runs out: every
    /// response re-arms it.)
    private func arm(_ context: ChannelHandlerContext, _ wait: Wait) {
        let at = NIODeadline.now() + .milliseconds(Int64(wait.seconds(server.configuration) * 1000))
        deadline = (at, wait)
        if let timer, timer.at <= at { return }
        timer?.task.cancel()
        schedule(context, at)
    }

    private func disarm() { deadline = nil }

    private func schedule(_ context: ChannelHandlerContext, _ at: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: at) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            guard let (due, wait) = handler.deadline else { return }
            if due > NIODeadline.now() {
                handler.schedule(context, due)
                return
            }
            let server = handler.server
            server.countTimeout()
            server.logger.debug("http: closing a connection: \(wait.reason(server.configuration))",
                                metadata: ["client": "\(context.channel.remoteAddress?.ipAddress ?? "?")"])
            context.channel.close(promise: nil)
        }
        timer = (task, at)
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, .request)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added by the child initializer after the channel went active: arm here too.
        if context.channel.isActive {
            arm(context, .request)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.task.cancel()
        timer = nil
        deadline = nil
        noteFailedHandshake(context, nil)
        context.fireChannelInactive()
    }

    /// TLS: whether the handshake completed, and whether this connection's failure to is
    /// already counted. A client that refuses the certificate may send an alert (NIOSSL's
    /// handshakeFailed) or only reset the connection (EDK2 does), so both count.
    private var handshakeDone = false
    private var handshakeNoted = false

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { handshakeDone = true }
        context.fireUserInboundEventTriggered(event)
    }

    private func noteFailedHandshake(_ context: ChannelHandlerContext, _ error: Error?) {
        guard secure, !handshakeDone, !handshakeNoted else { return }
        handshakeNoted = true
        server.noteHandshakeFailure(error.map { "\($0)" } ?? "connection closed before the handshake completed",
                                    client: context.channel.remoteAddress?.ipAddress ?? "?")
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
            disarm()
            // The channel's cached address: the context's asks the kernel (getpeername) each time.
            let client = context.channel.remoteAddress?.ipAddress ?? ""
            let request = HTTPRequestContext(method: head.method, uri: head.uri, headers: head.headers, body: body,
                                             clientAddress: client, scheme: secure ? "https" : "http")
            body = []
            if let response = server.respondOnLoop(to: request) {
                write(response, for: head, context: context)
                return
            }
            // A route (an API write waits for its commit) or a decision waiting for a policy
            // state: neither may hold the event loop, which serves every connection.
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
        arm(context, .refusedBody)
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
            // A small file goes with the head in one write: reading it costs less than the
            // descriptor, sendfile and close a region takes (most of a 1 KB request's system
            // calls). A larger one streams with sendfile.
            if length <= Self.inlineFileBytes {
                var buffer = context.channel.allocator.buffer(capacity: length)
                let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                    max(0, file.read(at: UInt64(start), count: length, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<length])))
                }
                if read == length {
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                    break
                }
                // Shorter than fstat said (the file is being rewritten): answer as below, whose
                // Content-Length error the client sees as a cut-off transfer.
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
            if secure {
                // TLS encrypts in user space, so no sendfile: the range is read in chunks on the
                // worker pool, each written before the next is read (a slow client holds one
                // chunk, not the file), and the response ends when the last is written.
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                server.fileIO.readChunked(fileHandle: handle, fromOffset: Int64(start), byteCount: length, chunkSize: 256 << 10,
                                          allocator: context.channel.allocator, eventLoop: context.eventLoop) { chunk in
                    let (handler, context) = loopBound.value
                    return context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(chunk))))
                }.whenComplete { result in
                    try? handle.close()
                    let (handler, context) = loopBound.value
                    if case .failure = result { context.close(promise: nil); return }
                    handler.finish(context: context, keepAlive: keepAlive)
                }
                return
            }
            // Corked while the head and the region go out (as nginx's tcp_nopush): the head
            // leaves with the file's first bytes in full segments, not in a packet of its own
            // that wakes the client once more per response. Uncorked when the region is written.
            let cork = Self.cork(context.channel, true)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
            let region = FileRegion(fileHandle: handle, readerIndex: start, endIndex: end + 1)
            let channel = context.channel
            context.write(wrapOutboundOut(.body(.fileRegion(region)))).whenComplete { _ in
                try? handle.close()
                if cork { _ = Self.cork(channel, false) }
            }
        case .later:
            break  // answered when it completes, above
        }
        finish(context: context, keepAlive: keepAlive)
    }

    private static let corkOption = ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: TCP_CORK))

    /// TCP_CORK on or off; false when the socket did not take it (not TCP, or closed).
    private static func cork(_ channel: Channel, _ on: Bool) -> Bool {
        (try? channel.syncOptions?.setOption(corkOption, value: on ? 1 : 0)) != nil
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
            arm(context, .idle)
        }
    }

    /// A request the HTTP decoder could not parse: NIO's error handler has answered 400;
    /// close, so the rest of the garbage is not read as another request.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        noteFailedHandshake(context, error)
        context.close(promise: nil)
    }
}
