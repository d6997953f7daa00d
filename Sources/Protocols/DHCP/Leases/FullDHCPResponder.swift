import Foundation

/// Full DHCP (RFC 2131 §4.3) for the subnets of the configured ranges: DISCOVER/OFFER,
/// REQUEST/ACK|NAK in every client state, DECLINE, RELEASE and INFORM. The pool decides
/// addresses; the policy's decision adds the boot answer (file, next-server, options) and may
/// pin an address (`address`) or refuse the client (`ignore`).
public struct FullDHCPResponder: Sendable {
    public typealias Reply = ProxyDHCPResponder.Reply
    public typealias Silence = ProxyDHCPResponder.Silence
    public let pool: LeasePool

    public init(pool: LeasePool) { self.pool = pool }

    /// The range that serves `request`: by the relay's address when relayed (RFC 2131 §4.3.1),
    /// else by our address on the arrival interface. Nil: full DHCP does not serve it.
    public func range(for request: DHCPMessage, arrival: ProxyDHCPResponder.Arrival) -> DHCPRange? {
        if !request.giaddr.isAny { return pool.range(servingFrom: request.giaddr) }
        return pool.range(servingFrom: arrival.serverAddress)
    }

    /// Message types the policy is asked about (the others change leases only).
    public static func asksPolicy(_ request: DHCPMessage) -> Bool {
        switch request.messageType {
        case .discover?, .request?, .inform?: return true
        default: return false
        }
    }

    /// What to send (or why not) and the journal mark to wait for before sending it (0: none).
    public struct Outcome: Sendable {
        public var result: Result<Reply, Silence>
        public var mark: UInt64
        /// Said on the log line with the reply (or the silence): which address, and why a NAK.
        public var detail: String?
    }

    public func answer(_ request: DHCPMessage, arrival: ProxyDHCPResponder.Arrival, range: DHCPRange,
                       decision: BootDecision?, now: Date = Date()) -> Outcome {
        func silent(_ s: Silence, _ detail: String? = nil, mark: UInt64 = 0) -> Outcome { Outcome(result: .failure(s), mark: mark, detail: detail) }
        // Malformed identifiers (RFC 2132: 61 is at least 2 bytes, 50 and 54 exactly 4) are
        // dropped, never guessed at.
        if let id = request.options[code: 61], id.count < 2 { return silent(.badOption, "option 61 shorter than 2 bytes") }
        if let v = request.options[code: 50], v.count != 4 { return silent(.badOption, "option 50 is not 4 bytes") }
        if let v = request.options[code: 54], v.count != 4 { return silent(.badOption, "option 54 is not 4 bytes") }
        guard request.hlen <= 16 else { return silent(.badOption, "hlen \(request.hlen) > 16") }
        guard let type = request.messageType else { return silent(.unsupportedMessageType) }
        if Self.asksPolicy(request), decision?.ignore == true { return silent(.ignoredByPolicy) }

        let client = Lease.clientKey(of: request)
        let mac = request.clientMAC
        let pinned = decision?.address.flatMap(IPv4Address.init)
        let ours = arrival.serverAddress
        switch type {
        case .discover:
            switch pool.offer(client: client, mac: mac, in: range, requested: request.requestedAddress, pinned: pinned, now: now) {
            case let .success(address):
                return Outcome(result: build(.offer, request, arrival: arrival, range: range, yiaddr: address, decision: decision),
                               mark: 0, detail: "\(address)")
            case .failure:
                return silent(.poolExhausted, "range \(range)")
            }

        case .request:
            let want: IPv4Address
            let state: String
            if let server = request.serverIdentifier {
                // SELECTING: the client chose a server by option 54.
                guard server == ours else {
                    pool.forgetOffer(client: client)
                    return silent(.otherServerChosen, "chose \(server)")
                }
                guard let requested = request.requestedAddress ?? (request.ciaddr.isAny ? nil : request.ciaddr) else {
                    return nak(request, arrival: arrival, "no requested address (option 50)")
                }
                want = requested
                state = "selecting"
            } else if let requested = request.requestedAddress {
                // INIT-REBOOT: the client asks to keep the address it remembers.
                guard range.subnet.contains(requested) else {
                    return nak(request, arrival: arrival, "\(requested) is not on this network (\(range.subnet))")
                }
                if let held = pool.lease(at: requested), held.client != client, held.isLive(at: now) {
                    return nak(request, arrival: arrival, "\(requested) is held by another client")
                }
                guard let own = pool.lease(of: client, in: range), own.address == requested else {
                    // RFC 2131 §4.3.2: no record of this client -> remain silent (another
                    // server may hold it).
                    return silent(.noLeaseRecord, "\(requested)")
                }
                want = requested
                state = "init-reboot"
            } else if !request.ciaddr.isAny {
                // RENEWING (unicast) or REBINDING (broadcast): the client holds ciaddr.
                guard range.subnet.contains(request.ciaddr) else {
                    return nak(request, arrival: arrival, "\(request.ciaddr) is not on this network (\(range.subnet))")
                }
                want = request.ciaddr
                state = request.broadcast ? "rebinding" : "renewing"
            } else {
                return silent(.badOption, "REQUEST with neither option 50 nor ciaddr")
            }
            switch pool.bind(client: client, mac: mac, hostname: request.hostname, address: want, in: range, pinned: pinned, now: now) {
            case let .success((lease, mark)):
                return Outcome(result: build(.ack, request, arrival: arrival, range: range, yiaddr: lease.address, decision: decision),
                               mark: mark, detail: "\(lease.address) (\(state))")
            case .failure(.heldByAnother):
                return nak(request, arrival: arrival, "\(want) is held by another client (\(state))")
            case let .failure(.storeUnavailable(why)):
                // No NAK either: the client keeps its address and retries (RFC 2131 §4.4.5).
                return silent(.stateNotDurable, "\(want): the shared lease store did not answer: \(why)")
            case .failure:
                return nak(request, arrival: arrival, "\(want) is not an address of \(range) (\(state))")
            }

        case .decline:
            guard request.serverIdentifier == nil || request.serverIdentifier == ours, let address = request.requestedAddress else {
                return silent(.declined, "not for us")
            }
            let mark = pool.decline(client: client, address: address, now: now)
            return silent(.declined, mark == 0 ? "\(address): not offered to this client, ignored" : "\(address): quarantined", mark: mark)

        case .release:
            guard request.serverIdentifier == nil || request.serverIdentifier == ours, !request.ciaddr.isAny else {
                return silent(.released, "not for us")
            }
            let mark = pool.release(client: client, address: request.ciaddr, now: now)
            return silent(.released, "\(request.ciaddr)", mark: mark)

        case .inform:
            // RFC 2131 §3.4: configuration only, no address and no lease times.
            return Outcome(result: build(.ack, request, arrival: arrival, range: range, yiaddr: .any, decision: decision, inform: true),
                           mark: 0, detail: "inform")

        default:
            return silent(.unsupportedMessageType)
        }
    }

    static let nakBytes: [UInt8] = [DHCPMessageType.nak.rawValue]

    /// RFC 2131 table 3: a DHCPNAK carries only 53, 54 and a message (56), broadcast (with the
    /// broadcast bit set for a relay, §4.3.2).
    func nak(_ request: DHCPMessage, arrival: ProxyDHCPResponder.Arrival, _ why: String) -> Outcome {
        var reply = request
        reply.op = .reply
        reply.overload = nil
        reply.secs = 0
        reply.ciaddr = .any
        reply.yiaddr = .any
        reply.siaddr = .any
        reply.sname = ZeroFields.sname
        reply.file = ZeroFields.file
        if !request.giaddr.isAny { reply.broadcast = true }
        var options = DHCPOptions()
        options.set(53, Self.nakBytes)
        options.set(54, arrival.serverAddress.bytes)
        options.set(56, Array(why.utf8.prefix(200)))
        if let agent = request.options[code: 82] { options.set(82, agent) }
        reply.options = options
        // A relay's option 82 is echoed whole (RFC 3046); one too long for the client's limit
        // silences the NAK as it does any reply.
        guard reply.fit(within: ProxyDHCPResponder.replyLimit(for: request)) else {
            return Outcome(result: .failure(.replyTooLarge), mark: 0, detail: why)
        }
        var out = ProxyDHCPResponder.address(reply, request: request, arrival: arrival)
        if !arrival.serverAddress.isLoopback, request.giaddr.isAny {
            out = Reply(message: reply, destination: .broadcast, destinationPort: 68, broadcast: true)
        }
        return Outcome(result: .success(out), mark: 0, detail: why)
    }

    /// Options the policy may not set: lease-critical ones and the relay's.
    static let reservedCodes: Set<UInt8> = [0, 50, 51, 52, 53, 54, 55, 58, 59, 61, 82, 255]

    func build(_ type: DHCPMessageType, _ request: DHCPMessage, arrival: ProxyDHCPResponder.Arrival, range: DHCPRange,
               yiaddr: IPv4Address, decision: BootDecision?, inform: Bool = false) -> Result<Reply, Silence> {
        var reply = request
        reply.op = .reply
        reply.overload = nil
        reply.secs = 0
        reply.yiaddr = yiaddr
        // §4.3.1 table 3: ciaddr is 0 in an OFFER; an ACK repeats the client's.
        if type == .offer { reply.ciaddr = .any }
        reply.siaddr = .any
        reply.sname = ZeroFields.sname
        reply.file = ZeroFields.file
        var longFile: [UInt8]?
        var longName: [UInt8]?
        if let file = decision?.filename {
            if file.utf8.count <= 127 { reply.file = DHCPMessage.fit(file.utf8, 128) } else { longFile = Array(file.utf8.prefix(255)) }
            reply.siaddr = arrival.serverAddress
        }
        if let next = decision?.nextServer.flatMap(IPv4Address.init) { reply.siaddr = next }
        if let name = decision?.serverName {
            if name.utf8.count <= 63 { reply.sname = DHCPMessage.fit(name.utf8, 64) } else { longName = Array(name.utf8.prefix(255)) }
        }

        var options = DHCPOptions()
        options.set(53, type == .offer ? ProxyDHCPResponder.offerBytes : ProxyDHCPResponder.ackBytes)
        options.set(54, arrival.serverAddress.bytes)
        if !inform {
            let lease = range.leaseTime
            options.set(51, Self.u32(lease))
            if lease != DHCPRange.infinite {
                options.set(58, Self.u32(lease / 2))
                options.set(59, Self.u32(UInt32(UInt64(lease) * 7 / 8)))
            }
        }
        options.set(1, range.netmask.bytes)
        options.set(28, range.broadcastAddress.bytes)
        if !range.routers.isEmpty { options.set(3, range.routers.flatMap(\.bytes)) }
        if !range.dnsServers.isEmpty { options.set(6, range.dnsServers.flatMap(\.bytes)) }
        if let domain = range.domain { options.set(15, Array(domain.utf8)) }
        if let mtu = range.mtu { options.set(26, [UInt8(mtu >> 8), UInt8(mtu & 0xff)]) }
        if !range.ntpServers.isEmpty { options.set(42, range.ntpServers.flatMap(\.bytes)) }
        if !range.routes.isEmpty { options.set(121, Self.classlessRoutes(range)) }
        if let decision {
            for code in decision.options.keys.sorted() where !Self.reservedCodes.contains(code) {
                options.set(code, decision.options[code]!)
            }
        }
        if let longName { options.set(66, longName) }
        if let longFile { options.set(67, longFile) }
        // UEFI HTTP boot only takes an offer that says HTTPClient (UEFI spec §24.7.2); PXE
        // firmware takes a plain offer with a boot file.
        if let vendor = request.options[code: 60], vendor.starts(with: Array("HTTPClient".utf8)) {
            options.set(60, Array("HTTPClient".utf8))
        }
        if decision?.filename != nil, let uuid = request.options[code: 97], uuid.count >= 17 { options.set(97, Array(uuid.prefix(17))) }
        if let agent = request.options[code: 82] { options.set(82, agent) }
        reply.options = options
        guard reply.fit(within: ProxyDHCPResponder.replyLimit(for: request)) else { return .failure(.replyTooLarge) }
        return .success(ProxyDHCPResponder.address(reply, request: request, arrival: arrival))
    }

    static func u32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    /// RFC 3442: each route as prefix length, the significant octets of the destination and
    /// the gateway. A client that gets option 121 ignores option 3, so the default route via
    /// the first router is added when the routes do not name one.
    static func classlessRoutes(_ range: DHCPRange) -> [UInt8] {
        var routes = range.routes
        if let router = range.routers.first, !routes.contains(where: { $0.destination.prefixLength == 0 }) {
            routes.append(.init(destination: IPv4Network(address: .any, prefixLength: 0), gateway: router))
        }
        var out: [UInt8] = []
        for r in routes {
            out.append(UInt8(r.destination.prefixLength))
            out += r.destination.address.bytes.prefix((r.destination.prefixLength + 7) / 8)
            out += r.gateway.bytes
        }
        return Array(out.prefix(255))
    }
}
