import NIOCore
import NIOEmbedded
import NIOPosix
import Testing
@testable import Protocols

/// TFTPTransfer alone in an EmbeddedChannel: what it writes, and how it takes a refused write.
@Suite struct TFTPTransferTests {
    /// Fails every write of more than one DATA packet the way a route without checksum offload
    /// refuses a UDP_SEGMENT send (EIO), and lets single packets through.
    final class RefuseSegmentedWrites: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        let segmentSize: Int
        init(segmentSize: Int) { self.segmentSize = segmentSize }
        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if unwrapOutboundIn(data).readableBytes > segmentSize {
                promise?.fail(IOError(errnoCode: EIO, reason: "sendmsg"))
                context.close(promise: nil)
                return
            }
            context.write(data, promise: promise)
        }
    }

    func run(refuse: Bool) throws -> (results: [TFTPTransfer.Result], written: [ByteBuffer]) {
        let content = TFTPContent.bytes((0..<20_000).map { UInt8(truncatingIfNeeded: $0) })
        let options = TFTPTransferOptions(blockSize: 1000, windowSize: 8)
        var results: [TFTPTransfer.Result] = []
        let setup = TFTPTransfer.Setup(content: content, netascii: false, options: options, timeout: .seconds(5), maxRetries: 1)
        let channel = EmbeddedChannel()
        if refuse { try channel.pipeline.syncOperations.addHandler(RefuseSegmentedWrites(segmentSize: 1004)) }
        try channel.pipeline.syncOperations.addHandler(TFTPTransfer(setup: setup, segmentSize: 1004) { results.append($0) })
        channel.pipeline.fireUserInboundEventTriggered(TFTPTransfer.Start())
        channel.embeddedEventLoop.run()  // a close queues the handlers' removal on the loop
        var written: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written.append(buffer) }
        let seen = results
        _ = try? channel.finish()
        return (seen, written)
    }

    @Test func aWindowLeavesAsOneSegmentedWrite() throws {
        let (results, written) = try run(refuse: false)
        #expect(results.isEmpty, "still waiting for ACK 8")
        #expect(written.map(\.readableBytes) == [8 * 1004])
        #expect(written.first?.getInteger(at: 8 * 1004 - 1004 + 2, as: UInt16.self) == 8, "block 8 ends the write")
    }

    @Test func aRefusedSegmentedWriteIsReportedSoTheServerStopsUsingIt() throws {
        let (results, _) = try run(refuse: true)
        let result = try #require(results.first)
        #expect(result.segmentationRefused)
        #expect(result.detail?.contains("segmentation offload") == true)
    }
}
