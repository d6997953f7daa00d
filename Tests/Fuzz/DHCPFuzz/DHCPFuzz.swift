import FuzzSupport
import NIOCore
import Protocols

/// DHCPv4 decode and ProxyDHCP reply building.
/// Input: one control byte, then a datagram as it would arrive on port 67/4011.
/// control bit 0: arrived on 4011 (else 67); bit 1: server on loopback (else 192.168.77.2);
/// bit 2: a relay filter is configured; bits 3-4: no decision / ignore / a decision;
/// bit 5: the source is 0.0.0.0:68 (else 192.168.77.50:68); bit 6: the option 57 limit is
/// applied to the decoded message too; bit 7: the datagram also goes through full DHCP
/// (`full`, a pool shared by the whole run).
/// The decision's fields come from the request itself (option 67 as filename, 66 as server
/// name, 54 as next-server, every option >= 128 as an extra option), so the fuzzer steers them.
/// Checks: decode never traps; a decoded message re-encodes to the same message; `fit(within:)`
/// either fits or leaves the message as it was; a built reply fits its limit, re-decodes as the
/// same reply, and is addressed sensibly (loopback stays loopback, no reply to port 67 unless
/// relayed).
enum DHCPFuzz {
    static let serverAddress = IPv4Address("192.168.77.2")!

    static func run(_ input: [UInt8]) {
        guard let control = input.first else { return }
        let datagram = Array(input.dropFirst())
        let message: DHCPMessage
        do {
            message = try DHCPMessage(bytes: datagram)
        } catch {
            fuzzCheck(error is DHCPError, "decode threw a non-DHCPError: \(error)")
            return
        }

        // Encode/decode round trip.
        let encoded = message.bytes
        fuzzCheck(encoded.count == message.encodedLength, "encodedLength \(message.encodedLength) but encode wrote \(encoded.count)")
        guard let again = try? DHCPMessage(bytes: encoded) else {
            fuzzCheck(false, "a decoded message does not decode after encoding: \(encoded)")
            return
        }
        fuzzCheck(again == message, "round trip changed the message:\n\(message)\n\(again)")
        _ = message.summary
        _ = BootRequest(dhcp: message, serverPort: 67, interface: "fuzz0", source: "0.0.0.0")

        if control & 0x40 != 0 {
            var fitted = message
            let limit = ProxyDHCPResponder.replyLimit(for: message)
            if fitted.fit(within: limit) {
                fuzzCheck(fitted.encodedLength <= limit, "fit said yes but \(fitted.encodedLength) > \(limit)")
                let bytes = fitted.bytes
                fuzzCheck(bytes.count <= limit, "fitted message encodes to \(bytes.count) > \(limit)")
                let decoded = try? DHCPMessage(bytes: bytes)
                fuzzCheck(decoded?.options == message.options, "fitting changed the options")
            } else {
                fuzzCheck(fitted == message, "a failed fit changed the message")
            }
        }

        // Reply building, as the server does it.
        let arrival = ProxyDHCPResponder.Arrival(
            port: control & 1 != 0 ? 4011 : 67,
            serverAddress: control & 2 != 0 ? .loopback : serverAddress,
            interface: "fuzz0",
            source: control & 0x20 != 0 ? .any : IPv4Address("192.168.77.50")!,
            sourcePort: 68)
        let responder = ProxyDHCPResponder(relayNetworks: control & 4 != 0 ? [IPv4Network("10.0.0.0/8")!] : nil)
        var decision: BootDecision?
        switch (control >> 3) & 3 {
        case 0: decision = nil
        case 1: decision = BootDecision(ignore: true)
        default:
            var options: [UInt8: [UInt8]] = [:]
            for option in message.options where option.code >= 128 { options[option.code] = option.value }
            decision = BootDecision(
                filename: message.options[code: 67].map { String(decoding: $0, as: UTF8.self) } ?? "undionly.kpxe",
                nextServer: message.options[code: 54].map { $0.map(String.init).joined(separator: ".") },
                serverName: message.options[code: 66].map { String(decoding: $0, as: UTF8.self) },
                options: options)
        }
        if control & 0x80 != 0 { full(message, arrival: arrival, decision: decision) }
        _ = responder.screen(message, arrival: arrival)
        switch responder.reply(to: message, arrival: arrival, decision: decision) {
        case .failure:
            return
        case .success(let reply):
            let limit = ProxyDHCPResponder.replyLimit(for: message)
            let bytes = reply.message.bytes
            fuzzCheck(bytes.count <= limit, "reply of \(bytes.count) bytes over its limit \(limit)")
            fuzzCheck(reply.message.encodedLength <= limit, "reply encodedLength over its limit")
            guard let decoded = try? DHCPMessage(bytes: bytes) else {
                fuzzCheck(false, "a built reply does not decode: \(bytes)")
                return
            }
            fuzzCheck(decoded == reply.message, "the reply does not re-decode as itself")
            fuzzCheck(decoded.op == .reply && decoded.xid == message.xid, "reply op/xid wrong")
            fuzzCheck(decoded.messageType == .offer || decoded.messageType == .ack, "reply type \(String(describing: decoded.messageType))")
            fuzzCheck(decoded.options[code: 54] == arrival.serverAddress.bytes, "reply server identifier is not ours")
            if arrival.serverAddress.isLoopback {
                fuzzCheck(reply.destination.isLoopback, "a loopback server replies to \(reply.destination)")
            }
            if reply.destinationPort == 67 {
                fuzzCheck(!message.giaddr.isAny && reply.destination == message.giaddr, "a reply to port 67 that is not to the relay")
            }
        }
    }
}

extension DHCPFuzz {
    /// One pool for the whole run (state carries from input to input, as in a server):
    /// 192.168.77.100-120 in 192.168.77.0/24, and the same /24 on loopback's 127/8 stand-in.
    static let pool: LeasePool = {
        let r = try! DHCPRange(start: IPv4Address(192, 168, 77, 100), end: IPv4Address(192, 168, 77, 120),
                               subnet: IPv4Network("192.168.77.0/24")!, leaseTime: 60)
        let l = try! DHCPRange(start: IPv4Address(127, 77, 0, 10), end: IPv4Address(127, 77, 0, 30),
                               subnet: IPv4Network("127.0.0.0/8")!, leaseTime: 60)
        return LeasePool(ranges: [r, l])
    }()
    static let fullResponder = FullDHCPResponder(pool: pool)

    /// Control bit 7: the same datagram through full DHCP. Checks: the reply fits, re-decodes
    /// as itself, is an OFFER, ACK or NAK from us; an OFFER or ACK of an address gives one of
    /// the range's subnet, and an ACK's address is the requester's in the pool.
    static func full(_ message: DHCPMessage, arrival: ProxyDHCPResponder.Arrival, decision: BootDecision?) {
        guard message.op == .request, let range = fullResponder.range(for: message, arrival: arrival) else { return }
        let outcome = fullResponder.answer(message, arrival: arrival, range: range, decision: decision)
        guard case let .success(reply) = outcome.result else { return }
        let limit = ProxyDHCPResponder.replyLimit(for: message)
        let bytes = reply.message.bytes
        fuzzCheck(bytes.count <= limit, "full: reply of \(bytes.count) bytes over its limit \(limit)")
        guard let decoded = try? DHCPMessage(bytes: bytes) else {
            fuzzCheck(false, "full: a built reply does not decode: \(bytes)")
            return
        }
        fuzzCheck(decoded == reply.message, "full: the reply does not re-decode as itself")
        let type = decoded.messageType
        fuzzCheck(type == .offer || type == .ack || type == .nak, "full: reply type \(String(describing: type))")
        fuzzCheck(decoded.options[code: 54] == arrival.serverAddress.bytes, "full: server identifier is not ours")
        if type == .nak { fuzzCheck(decoded.yiaddr.isAny, "full: a NAK with an address") }
        if (type == .offer || type == .ack), !decoded.yiaddr.isAny {
            fuzzCheck(range.subnet.contains(decoded.yiaddr), "full: \(decoded.yiaddr) is outside \(range.subnet)")
            if type == .ack {
                fuzzCheck(pool.lease(at: decoded.yiaddr)?.client == Lease.clientKey(of: message), "full: ACKed an address the pool gives another client")
            }
        }
        if arrival.serverAddress.isLoopback { fuzzCheck(reply.destination.isLoopback, "full: a loopback server replies to \(reply.destination)") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DHCPFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(DHCPFuzz.run) } }
#endif
