import Foundation
import Protocols

/// The reply the ProxyDHCP server would send for a recorded request and a decision, as
/// `bootpolicy explain` prints it.
enum ReplyPreview {
    static func lines(for fixture: Fixture, request: BootRequest, decision: BootDecision, serverAddress: String) -> [String]? {
        if fixture.family == .ipv6 { return lines6(for: fixture, decision: decision, serverAddress: serverAddress) }
        guard let message = try? fixture.message(), let server = IPv4Address(serverAddress) else { return nil }
        let arrival = ProxyDHCPResponder.Arrival(
            port: fixture.serverPort ?? 67, serverAddress: server, interface: fixture.interface,
            source: fixture.source.flatMap(IPv4Address.init) ?? IPv4Address(0, 0, 0, 0), sourcePort: 68)
        switch ProxyDHCPResponder().reply(to: message, arrival: arrival, decision: decision) {
        case .failure(let silence):
            return ["none: the server stays silent (\(silence.rawValue))"]
        case .success(let reply):
            let m = reply.message
            var out = ["to \(reply.destination):\(reply.destinationPort)\(reply.broadcast ? " (broadcast)" : "")",
                       "\(m.messageType.map { "\($0)" } ?? "?")  yiaddr \(m.yiaddr)  siaddr \(m.siaddr)",
                       "file \(m.bootFile.isEmpty ? "-" : m.bootFile)  sname \(m.serverName.isEmpty ? "-" : m.serverName)"]
            for option in m.options {
                let hex = option.value.prefix(24).map { String(format: "%02x", $0) }.joined()
                out.append("option \(option.code): \(hex)\(option.value.count > 24 ? "..." : "")")
            }
            return out
        }
    }

    /// The boot-only DHCPv6 answer (`DHCPv6Responder`), as `serve --dhcp6` would send it.
    static func lines6(for fixture: Fixture, decision: BootDecision, serverAddress: String) -> [String]? {
        guard let raw = fixture.raw, let bytes = Hex.decode(raw), let packet = try? DHCPv6Packet(bytes: bytes),
              let source = fixture.source.flatMap(IPv6Address.init) else { return nil }
        let port = fixture.serverPort ?? 547
        let arrival = DHCPv6Responder.Arrival(port: port, interface: fixture.interface, source: source,
                                              sourcePort: port == 4011 ? 4011 : (packet.relays.isEmpty ? 546 : 547),
                                              serverAddress: IPv6Address(serverAddress))
        let responder = DHCPv6Responder(serverDUID: DUID(bytes: [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 2])!)
        let screened: DHCPv6Responder.Screened
        switch responder.screen(packet, arrival: arrival) {
        case .failure(let why): return ["none: the server stays silent (\(why.rawValue))"]
        case .success(let s): screened = s
        }
        switch responder.answer(screened, arrival: arrival, decision: decision).result {
        case .failure(let why):
            return ["none: the server stays silent (\(why.rawValue))"]
        case .success(let reply):
            var out = ["to [\(reply.destination)]:\(reply.destinationPort)\(reply.packet.relays.isEmpty ? "" : " (through \(reply.packet.relays.count) relay(s))")",
                       "\(reply.packet.message.type.name)  boot-file-url \(reply.bootFileURL ?? "-")"]
            for option in reply.packet.message.options {
                let hex = option.value.prefix(24).map { String(format: "%02x", $0) }.joined()
                out.append("option \(option.code): \(hex)\(option.value.count > 24 ? "..." : "")")
            }
            return out
        }
    }
}
