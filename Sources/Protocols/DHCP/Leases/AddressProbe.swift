import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Asks the network whether an address is in use before it is offered (RFC 2131 §2.2: "the
/// allocating server SHOULD probe the reused address before allocating it, e.g. with an ICMP
/// echo request", as dnsmasq does).
public protocol AddressProbe: Sendable {
    /// True when something answered for `address` within the probe's timeout.
    func inUse(_ address: IPv4Address) -> Bool
}

/// An ICMP echo request and a short wait for the reply. A raw socket needs CAP_NET_RAW; without
/// it a ping socket (SOCK_DGRAM, allowed by `net.ipv4.ping_group_range`) is used; with neither,
/// `open` says why and the server runs without probing.
public struct ICMPEchoProbe: AddressProbe {
    public let timeout: TimeInterval
    let raw: Bool
    private static let sequence = LockedCounter()

    /// A probe if this process may send ICMP echo requests; else the reason it may not.
    public static func open(timeout: TimeInterval) -> Result<ICMPEchoProbe, ProbeUnavailable> {
        let rawFD = socket(AF_INET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMP))
        if rawFD >= 0 {
            close(rawFD)
            return .success(ICMPEchoProbe(timeout: timeout, raw: true))
        }
        let rawError = errno
        let pingFD = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMP))
        if pingFD >= 0 {
            close(pingFD)
            return .success(ICMPEchoProbe(timeout: timeout, raw: false))
        }
        let pingError = errno
        return .failure(ProbeUnavailable(description:
            "no ICMP socket: raw: \(String(cString: strerror(rawError))) (needs CAP_NET_RAW), ping: \(String(cString: strerror(pingError))) (net.ipv4.ping_group_range)"))
    }

    public func inUse(_ address: IPv4Address) -> Bool {
        let type = raw ? Int32(SOCK_RAW.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = socket(AF_INET, type | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_ICMP))
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let id = UInt16(truncatingIfNeeded: getpid())
        let seq = UInt16(truncatingIfNeeded: Self.sequence.next())
        var packet: [UInt8] = [8, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xff), UInt8(seq >> 8), UInt8(seq & 0xff)]
        packet += Array("bootpolicy probe".utf8)
        let sum = Self.checksum(packet)
        packet[2] = UInt8(sum >> 8)
        packet[3] = UInt8(sum & 0xff)
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = address.rawValue.bigEndian
        let sent = packet.withUnsafeBytes { bytes in
            withUnsafePointer(to: &to) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard sent == packet.count else { return false }  // no route: nothing there to answer
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 1_500)
        // Bounded: every pass either reads a datagram or waits out the time left.
        for _ in 0..<64 {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(max(1, left * 1000))) > 0 else { return false }
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buffer.withUnsafeMutableBytes { b in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &length) }
                }
            }
            guard n > 0 else { continue }
            guard UInt32(bigEndian: from.sin_addr.s_addr) == address.rawValue else { continue }
            var offset = 0
            if raw {
                offset = Int(buffer[0] & 0x0f) * 4
                guard n >= offset + 8 else { continue }
                // A raw socket sees every echo reply: match ours by identifier.
                guard buffer[offset + 4] == UInt8(id >> 8), buffer[offset + 5] == UInt8(id & 0xff) else { continue }
            }
            guard n >= offset + 8 else { continue }
            if buffer[offset] == 0 { return true }  // echo reply
        }
        return false
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}

public struct ProbeUnavailable: Error, Sendable, CustomStringConvertible {
    public var description: String
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0
    func next() -> UInt64 { lock.withLock { value &+= 1; return value } }
}
