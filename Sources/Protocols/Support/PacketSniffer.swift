#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Listen-only capture of UDP datagrams to given ports on one interface, through an AF_PACKET
/// socket: it binds no UDP port, so it works beside a running DHCP server and can never answer.
/// Used by `bootpolicy record`. Needs CAP_NET_RAW.
public final class PacketSniffer {
    public struct Datagram: Sendable {
        public var source: String
        public var sourcePort: UInt16
        public var destination: String
        public var destinationPort: UInt16
        public var payload: [UInt8]
    }

    public enum SnifferError: Error, CustomStringConvertible {
        case noSuchInterface(String)
        case socket(String)
        public var description: String {
            switch self {
            case .noSuchInterface(let name): return "no such interface: \(name)"
            case .socket(let why): return "capture socket: \(why) (recording needs root or CAP_NET_RAW)"
            }
        }
    }

    private let fd: Int32
    private let ports: Set<UInt16>
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    public init(interface: String, ports: Set<UInt16>) throws {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw SnifferError.noSuchInterface(interface) }
        let ethPIP = UInt16(0x0800)
        let fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(ethPIP.bigEndian))
        guard fd >= 0 else { throw SnifferError.socket(String(cString: strerror(errno))) }
        // struct sockaddr_ll (linux/if_packet.h) is not imported into Swift; lay it out by hand:
        // u16 family, be16 protocol, i32 ifindex, u16 hatype, u8 pkttype, u8 halen, u8 addr[8].
        var sll = [UInt8](repeating: 0, count: 20)
        withUnsafeBytes(of: UInt16(AF_PACKET)) { sll.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: ethPIP.bigEndian) { sll.replaceSubrange(2..<4, with: $0) }
        withUnsafeBytes(of: Int32(index)) { sll.replaceSubrange(4..<8, with: $0) }
        let rc = sll.withUnsafeBytes {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20))
        }
        guard rc == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw SnifferError.socket(why)
        }
        self.fd = fd
        self.ports = ports
    }

    deinit { close(fd) }

    /// Waits up to `timeout` seconds for the next matching datagram; nil on timeout.
    public func next(timeout: Double) -> Datagram? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { continue }
            if let datagram = Self.parseIPv4UDP(buffer[0..<n], ports: ports) { return datagram }
        }
    }

    /// An IPv4 packet (no link header) to a UDP datagram, when it is one to a port we watch.
    static func parseIPv4UDP(_ packet: ArraySlice<UInt8>, ports: Set<UInt16>) -> Datagram? {
        let p = Array(packet)
        guard p.count >= 28, p[0] >> 4 == 4, p[9] == 17 else { return nil }
        let ihl = Int(p[0] & 0x0f) * 4
        guard ihl >= 20, p.count >= ihl + 8 else { return nil }
        // Fragments other than the first carry no UDP header.
        let fragOffset = (UInt16(p[6] & 0x1f) << 8) | UInt16(p[7])
        guard fragOffset == 0 else { return nil }
        let sport = UInt16(p[ihl]) << 8 | UInt16(p[ihl + 1])
        let dport = UInt16(p[ihl + 2]) << 8 | UInt16(p[ihl + 3])
        guard ports.contains(dport) else { return nil }
        let udpLength = Int(UInt16(p[ihl + 4]) << 8 | UInt16(p[ihl + 5]))
        guard udpLength >= 8, ihl + udpLength <= p.count else { return nil }
        let src = "\(p[12]).\(p[13]).\(p[14]).\(p[15])"
        let dst = "\(p[16]).\(p[17]).\(p[18]).\(p[19])"
        return Datagram(source: src, sourcePort: sport, destination: dst, destinationPort: dport,
                        payload: Array(p[(ihl + 8)..<(ihl + udpLength)]))
    }
}
