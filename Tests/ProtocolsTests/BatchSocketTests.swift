#if canImport(Glibc)
import CLinux
import Foundation
import Glibc
import Testing
@testable import Protocols

/// The batch calls the ProxyDHCP threads use (CLinux): recvmmsg into a reusable batch, and
/// sendmmsg that goes on past a datagram that fails. Real sockets on loopback.
struct BatchSocketTests {
    /// Two probes on loopback: `a` sends, `b` receives (or the other way round).
    static func pair() throws -> (UDPProbe, UDPProbe) {
        (try UDPProbe(bind: "127.0.0.1", port: 0), try UDPProbe(bind: "127.0.0.1", port: 0))
    }

    @Test func oneCallTakesWhatIsQueuedWithSourceAndArrival() throws {
        let (a, b) = try Self.pair()
        let batch = try #require(clinux_batch_create(8, 64))
        defer { clinux_batch_free(batch) }
        #expect(clinux_batch_receive(batch, b.fd, 0, 8) == -1 && errno == EAGAIN, "empty: no wait")

        for n in 0..<5 { a.send([UInt8](repeating: UInt8(n), count: 10 + n), to: .loopback, port: b.localPort) }
        a.send([UInt8](repeating: 9, count: 100), to: .loopback, port: b.localPort)  // longer than a slot
        // All six are queued on loopback by the time sendto returns.
        #expect(clinux_batch_receive(batch, b.fd, 1, 1) == 1, "room for one: one, the rest stays queued")
        #expect(clinux_batch_datagram(batch, 0).pointee.length == 10)
        a.send([7, 7], to: .loopback, port: b.localPort)
        // Queued now: 11...14 bytes, the cut one, and the 2 bytes sent last.
        #expect(clinux_batch_receive(batch, b.fd, 1, 8) == 6)
        let expected: [[UInt8]] = (1..<5).map { [UInt8](repeating: UInt8($0), count: 10 + $0) }
            + [[UInt8](repeating: 9, count: 64), [7, 7]]
        for n in 0..<6 {
            let datagram = clinux_batch_datagram(batch, CInt(n)).pointee
            #expect(datagram.family == sa_family_t(AF_INET))
            #expect(IPv4Address(rawValue: UInt32(bigEndian: datagram.source)) == .loopback)
            #expect(Int(UInt16(bigEndian: datagram.source_port)) == a.localPort)
            #expect(datagram.interface_index > 0, "IP_PKTINFO read")
            #expect(IPv4Address(rawValue: UInt32(bigEndian: datagram.destination)) == .loopback)
            let bytes = Array(UnsafeRawBufferPointer(start: clinux_batch_bytes(batch, CInt(n)), count: Int(datagram.length)))
            #expect(bytes == expected[n])
            #expect((datagram.truncated != 0) == (n == 4), "only the long one is cut, and says so")
        }
    }

    /// A batch with a datagram the kernel refuses (port 0: EINVAL) in the middle: the one
    /// fails with its errno, the ones after it are still sent.
    @Test func sendGoesOnPastAFailedDatagram() throws {
        let (a, b) = try Self.pair()
        let payloads: [[UInt8]] = [[1, 1, 1], [2, 2], [3]]
        let ports = [b.localPort, 0, b.localPort]
        var errors = [CInt](repeating: -1, count: 3)
        let failed = payloads[0].withUnsafeBytes { p0 in
            payloads[1].withUnsafeBytes { p1 in
                payloads[2].withUnsafeBytes { p2 in
                    let outgoing = zip([p0, p1, p2], ports).map { bytes, port in
                        clinux_outgoing(bytes: bytes.baseAddress, length: CInt(bytes.count),
                                        address: IPv4Address.loopback.rawValue.bigEndian,
                                        port: UInt16(port).bigEndian)
                    }
                    return clinux_send_datagrams(a.fd, outgoing, 3, &errors)
                }
            }
        }
        #expect(failed == 1)
        #expect(errors == [0, EINVAL, 0])
        #expect(b.receive(timeout: 2, limit: 2).map(\.bytes) == [[1, 1, 1], [3]])
    }

    /// More than one sendmmsg holds (64): all go, in order, and a failure past the first 64
    /// is reported at its own index.
    @Test func aLongListGoesInSeveralCalls() throws {
        let (a, b) = try Self.pair()
        let payload: [UInt8] = Array(0..<100)
        var errors = [CInt](repeating: -1, count: 100)
        let failed = payload.withUnsafeBytes { bytes in
            let outgoing = (0..<100).map { i in
                clinux_outgoing(bytes: bytes.baseAddress! + i, length: 1, address: IPv4Address.loopback.rawValue.bigEndian,
                                port: UInt16(i == 70 ? 0 : b.localPort).bigEndian)
            }
            return clinux_send_datagrams(a.fd, outgoing, 100, &errors)
        }
        #expect(failed == 1)
        #expect(errors.enumerated().allSatisfy { $0.element == ($0.offset == 70 ? EINVAL : 0) })
        #expect(b.receive(timeout: 2, limit: 99).map(\.bytes) == (0..<100).filter { $0 != 70 }.map { [UInt8($0)] })
    }
}
#endif
