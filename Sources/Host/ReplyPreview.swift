import Foundation
import Protocols

/// The reply the ProxyDHCP server would send for a recorded request and a decision, as
/// `bootpolicy explain` prints it.
enum ReplyPreview {
    static func lines(for fixture: Fixture, request: BootRequest, decision: BootDecision, serverAddress: String) -> [String]? {
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
}
