import Foundation
import FuzzSupport
import Protocols

/// DHCPv6 decode (relay chains included) and the responder's answers, boot-only and stateful.
/// Input: one control byte, then a datagram as it would arrive on port 547/4011.
/// control bit 0: arrived on 4011 (else 547); bit 1: stateful (the run's pool, fd77::/64,
/// which a relay's link-address or our address may put the client on); bits 2-3: no
/// decision / ignore / the request's own option 59 (or a bare name) as filename / an http URL;
/// bit 4: we have no global address on the link; bit 5: the source is a relay's global address
/// (else a client's link-local one).
/// Checks: decode never traps and throws only DHCPv6Error; a decoded packet re-encodes to
/// bytes that decode to the same message and encode to themselves; every reply re-decodes,
/// is an Advertise or Reply with our Server ID and the request's transaction id and Client ID,
/// fits an IPv6 minimum-MTU datagram, wraps back through the same relays, never offers an
/// IA_NA in boot-only mode, and any address it binds is in the pool's range and the
/// requester's there.
enum DHCPv6Fuzz {
    static let duid = DUID(bytes: [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 2])!
    static let range = try! DHCPv6Range(start: IPv6Address("fd77::100")!, end: IPv6Address("fd77::140")!, leaseTime: 60)
    static let pool = DHCPv6LeasePool(ranges: [range])
    static let bootOnly = DHCPv6Responder(serverDUID: duid)
    static let stateful = DHCPv6Responder(serverDUID: duid, pool: pool)

    static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let datagram = Array(input.dropFirst())
        let packet: DHCPv6Packet
        do {
            packet = try DHCPv6Packet(bytes: datagram)
        } catch {
            return  // typed: DHCPv6Error is the only thing init(bytes:) can throw
        }
        let encoded = packet.bytes
        guard let again = try? DHCPv6Packet(bytes: encoded) else {
            fuzzCheck(false, "a decoded packet does not decode after encoding")
            return
        }
        fuzzCheck(again.message == packet.message && again.relays.count == packet.relays.count, "round trip changed the message")
        fuzzCheck(again.bytes == encoded, "encoding is not a fixed point")
        let source = control & 0x20 != 0 ? IPv6Address("fd77::1")! : IPv6Address("fe80::5054:ff:fe79:2")!
        _ = BootRequest(dhcpv6: packet, source: source, interface: "fuzz0", serverPort: 547)

        let port = control & 1 != 0 ? 4011 : 547
        let arrival = DHCPv6Responder.Arrival(port: port, interface: "fuzz0", source: source,
                                              sourcePort: port == 4011 ? 4011 : (control & 0x20 != 0 ? 547 : 546),
                                              serverAddress: control & 0x10 != 0 ? nil : IPv6Address("fd77::2")!)
        let responder = control & 2 != 0 ? stateful : bootOnly
        var decision: BootDecision?
        switch (control >> 2) & 3 {
        case 0: decision = nil
        case 1: decision = BootDecision(ignore: true)
        case 2: decision = BootDecision(filename: packet.message.options.bootFileURL ?? "ipxe.efi")
        default: decision = BootDecision(filename: "http://[fd77::2]:8080/boot.ipxe?x=" + String(repeating: "a", count: Int(control)))
        }
        guard case let .success(screened) = responder.screen(packet, arrival: arrival) else { return }
        let outcome = responder.answer(screened, arrival: arrival, decision: decision)
        guard case let .success(reply) = outcome.result else { return }
        let bytes = reply.bytes
        fuzzCheck(bytes.count <= DHCPv6Responder.maximumReply, "reply of \(bytes.count) bytes")
        guard let decoded = try? DHCPv6Packet(bytes: bytes) else {
            fuzzCheck(false, "a built reply does not decode")
            return
        }
        let m = decoded.message
        fuzzCheck(m.type == .advertise || m.type == .reply, "reply type \(m.type)")
        fuzzCheck(m.transactionID == packet.message.transactionID, "reply xid")
        fuzzCheck(m.options.serverDUID == duid, "reply server id is not ours")
        fuzzCheck(m.options[code: DHCPv6OptionCode.clientID] == packet.message.options[code: DHCPv6OptionCode.clientID], "client id not echoed")
        fuzzCheck(decoded.relays.count == packet.relays.count && decoded.relays.allSatisfy { $0.type == .relayReply }, "relay chain")
        fuzzCheck(reply.destination == source, "reply not to the sender")
        if responder.pool == nil || screened.range == nil {
            fuzzCheck(!m.options.contains(DHCPv6OptionCode.iaNA), "an IA_NA without a range")
        }
        let duidBytes = packet.message.options[code: DHCPv6OptionCode.clientID] ?? []
        for ia in m.options.iaNAs {
            for a in ia.addresses where a.validLifetime > 0 {
                fuzzCheck(range.contains(a.address), "\(a.address) is outside the range")
                if m.type == .reply, packet.message.type != .confirm {
                    let key = Lease6.key(duid: duidBytes, iaid: ia.iaid)
                    fuzzCheck(pool.binding(client: key, address: a.address) != nil, "replied \(a.address) but the pool does not hold it for \(key)")
                }
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DHCPv6Fuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(DHCPv6Fuzz.run) } }
#endif
