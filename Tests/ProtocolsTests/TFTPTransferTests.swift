import Foundation
import NIOCore
import Testing
@testable import Protocols

#if canImport(Glibc)
import Glibc
#endif

/// TFTPTransfer alone, driven by hand over a real pair of connected loopback UDP sockets: what
/// each send(2) carries, and how it takes a route that refuses segmented (GSO) sends.
@Suite struct TFTPTransferTests {
    struct Run {
        var results: [TFTPTransfer.Result] = []
        /// Bytes per send(2) the transfer made.
        var sends: [Int] = []
        /// Sizes of the datagrams the client received.
        var received: [Int] = []
    }

    /// 20,000 bytes at blksize 1000, window 8: windows 1-8, 9-16, 17-21 (block 21 is empty).
    /// The client ACKs the last block of each window; `refuse` fails every send longer than one
    /// packet with EIO, the way a device without checksum offload refuses UDP_SEGMENT.
    func run(refuse: Bool) throws -> Run {
        let client = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
        try #require(client >= 0)
        defer { close(client) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: 0)
        try #require(loopback.withSockAddr { bind(client, $0, socklen_t($1)) } == 0)
        let clientAddress = try #require(Self.localAddress(of: client))

        var segmentSize = 1004
        let fd = try TFTPServer.openTransferSocket(from: loopback, to: clientAddress, segmentSize: &segmentSize)
        defer { close(fd) }
        try #require(segmentSize == 1004 || !System.supportsUDPSegmentationOffload)
        let serverAddress = try #require(Self.localAddress(of: fd))
        try #require(serverAddress.withSockAddr { connect(client, $0, socklen_t($1)) } == 0)

        var run = Run()
        let content = TFTPContent.bytes((0..<20_000).map { UInt8(truncatingIfNeeded: $0) })
        let setup = TFTPTransfer.Setup(content: content, netascii: false, options: TFTPTransferOptions(blockSize: 1000, windowSize: 8),
                                       timeout: .seconds(5), maxRetries: 1)
        var results: [TFTPTransfer.Result] = []
        var sends: [Int] = []
        let transfer = TFTPTransfer(fd: fd, setup: setup, segmentSize: segmentSize) { results.append($0) }
        transfer.sendDatagram = { fd, bytes in
            sends.append(bytes.count)
            if refuse && bytes.count > 1004 { return EIO }
            return Glibc.send(fd, bytes.baseAddress, bytes.count, 0) < 0 ? errno : 0
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
        defer { buffer.deallocate() }
        transfer.start(now: TFTPTransfer.now())
        var lastBlock: UInt16 = 0
        // Bounded: 21 DATA packets and 3 ACKs make a whole transfer.
        for _ in 0..<40 where !transfer.finished {
            let n = recv(client, buffer.baseAddress, buffer.count, 0)
            try #require(n >= 4, "the client got no DATA (errno \(errno))")
            run.received.append(n)
            lastBlock = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
            if n < 1004 || lastBlock % 8 == 0 {
                var ack: [UInt8] = [0, 4, UInt8(lastBlock >> 8), UInt8(lastBlock & 0xff)]
                try #require(Glibc.send(client, &ack, 4, 0) == 4)
                for _ in 0..<100 where !transfer.finished {
                    var pending = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                    if poll(&pending, 1, 50) > 0 {
                        transfer.readable(now: TFTPTransfer.now(), buffer: buffer)
                        break
                    }
                }
            }
        }
        run.results = results
        run.sends = sends
        return run
    }

    /// Both sockets are bound to 127.0.0.1; only the port is the kernel's choice.
    static func localAddress(of fd: CInt) -> SocketAddress? {
        try? SocketAddress(ipAddress: "127.0.0.1", port: TFTPLossyRelay.localPort(fd))
    }

    @Test func aWindowLeavesAsOneSegmentedSend() throws {
        try #require(System.supportsUDPSegmentationOffload, "kernel without UDP GSO")
        let run = try run(refuse: false)
        #expect(run.sends == [8 * 1004, 8 * 1004, 4 * 1004 + 4], "one send per window")
        #expect(run.received == Array(repeating: 1004, count: 20) + [4], "the kernel cut them into DATA packets")
        #expect(run.results.map(\.outcome) == [.ok])
        #expect(run.results.first?.bytes == 20_000)
        #expect(run.results.first?.segmentationRefused == false)
    }

    @Test func aRefusedSegmentedSendFallsBackToSinglePacketsAndIsReported() throws {
        try #require(System.supportsUDPSegmentationOffload, "kernel without UDP GSO")
        let run = try run(refuse: true)
        #expect(run.sends.first == 8 * 1004, "the first window is tried segmented")
        #expect(run.sends.dropFirst().allSatisfy { $0 <= 1004 }, "then packet by packet")
        #expect(run.received == Array(repeating: 1004, count: 20) + [4], "and the client still gets every block, once")
        let result = try #require(run.results.first)
        #expect(result.outcome == .ok)
        #expect(result.segmentationRefused)
        #expect(result.detail?.contains("segmentation offload") == true)
    }
}
