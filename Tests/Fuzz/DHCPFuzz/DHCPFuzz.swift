import FuzzSupport
import NIOCore
import Protocols

/// DHCPv4 decode and ProxyDHCP reply building.
/// Input: one control byte, then a datagram as it would arrive on port 67/4011.
/// control bit 0: arrived on 4011 (else 67); bit 1: server on loopback (else 192.168.77.2);
/// bit 2: a relay filter is configured; bits 3-4: no decision / ignore / a decision;
/// bit 5: the source is 0.0.0.0:68 (else 192.168.77.50:68); bit 6: the option 57 limit is
/// applied to the decoded message too.
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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DHCPFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(DHCPFuzz.run) } }
#endif
