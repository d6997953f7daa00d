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
        /// Came over IPv6 (its addresses are IPv6 text).
        public var isIPv6 = false
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

    private let fds: [Int32]
    private let ports: Set<UInt16>
    /// UDP ports watched over IPv6 (DHCPv6); empty: IPv4 only.
    private let ports6: Set<UInt16>
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    /// IPv4 datagrams to `ports`, and IPv6 ones to `ports6` (a second packet socket).
    public init(interface: String, ports: Set<UInt16>, ports6: Set<UInt16> = []) throws {
        let index = if_nametoindex(interface)
        guard index != 0 else { throw SnifferError.noSuchInterface(interface) }
        var fds: [Int32] = []
        for protocolNumber in [UInt16(0x0800)] + (ports6.isEmpty ? [] : [UInt16(0x86DD)]) {
            let fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(protocolNumber.bigEndian))
            guard fd >= 0 else {
                let why = String(cString: strerror(errno))
                fds.forEach { close($0) }
                throw SnifferError.socket(why)
            }
            // struct sockaddr_ll (linux/if_packet.h) is not imported into Swift; lay it out by hand:
            // u16 family, be16 protocol, i32 ifindex, u16 hatype, u8 pkttype, u8 halen, u8 addr[8].
            var sll = [UInt8](repeating: 0, count: 20)
            withUnsafeBytes(of: UInt16(AF_PACKET)) { sll.replaceSubrange(0..<2, with: $0) }
            withUnsafeBytes(of: protocolNumber.bigEndian) { sll.replaceSubrange(2..<4, with: $0) }
            withUnsafeBytes(of: Int32(index)) { sll.replaceSubrange(4..<8, with: $0) }
            let rc = sll.withUnsafeBytes {
                bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(20))
            }
            guard rc == 0 else {
                let why = String(cString: strerror(errno))
                close(fd)
                fds.forEach { close($0) }
                throw SnifferError.socket(why)
            }
            fds.append(fd)
        }
        self.fds = fds
        self.ports = ports
        self.ports6 = ports6
    }

    deinit { fds.forEach { close($0) } }

    /// Waits up to `timeout` seconds for the next matching datagram; nil on timeout.
    public func next(timeout: Double) -> Datagram? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var pfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&pfds, nfds_t(pfds.count), Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            for (i, p) in pfds.enumerated() where p.revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(p.fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { continue }
                if i == 0 {
                    if let datagram = Self.parseIPv4UDP(buffer[0..<n], ports: ports) { return datagram }
                } else if let d = PcapReader.ipv6UDP(Array(buffer[0..<n]), index: 0, time: nil), ports6.contains(d.destinationPort) {
                    return Datagram(source: d.source.description, sourcePort: d.sourcePort, destination: d.destination.description,
                                    destinationPort: d.destinationPort, payload: d.payload, isIPv6: true)
                }
            }
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
