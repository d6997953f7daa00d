import Foundation

/// DHCPv6 as pure functions: given a decoded packet, where it arrived and what the policy
/// decided, the reply to send (and where), or why to stay silent.
///
/// Two modes, as for DHCPv4:
/// - **boot-only** (no `pool`), beside a site DHCPv6 server that hands out the addresses: the
///   IPv6 ProxyDHCP of UEFI (EDK2 PxeBcDxe/HttpBootDxe). A netboot client's Solicit gets an
///   Advertise with our Server ID, its Client ID, the boot file URL (option 59) and the
///   vendor class that marks a PXE or HTTP boot offer, and no IA_NA and no status at all: an
///   Advertise with any non-Success status is thrown away by EDK2's Dhcp6Dxe, and one with an
///   IA_NA would be an address offer we cannot keep. EDK2 then asks again, on UDP 4011, with a
///   Request carrying our Server ID: the Reply carries option 59 again.
/// - **stateful** (`pool`): addresses in IA_NA (RFC 8415 §18.3), with the boot options for
///   netboot clients in the same Advertise and Reply. The PXEClient vendor class is *not*
///   echoed then: EDK2 treats the offer as a plain address offer that carries a boot file URL
///   ("DhcpOnly" with option 59) and boots from it without the 4011 exchange; iPXE takes the
///   Reply's option 59 as its filename.
///
/// A request for another server, a Solicit that names a server, a client message without a
/// Client ID, and every message a client does not send are dropped (RFC 8415 §16).
public struct DHCPv6Responder: Sendable {
    public struct Arrival: Sendable, Equatable {
        /// 547 (DHCPv6) or 4011 (EDK2's boot-server follow-up after a proxy Advertise).
        public var port: Int
        public var interface: String?
        public var source: IPv6Address
        public var sourcePort: Int
        /// Our global or unique-local address on the arrival interface: the host of a
        /// `tftp://` URL made from a bare file name, and the link a stateful range serves.
        /// Never a link-local one (EDK2 cannot use a URL with a zone).
        public var serverAddress: IPv6Address?

        public init(port: Int = 547, interface: String? = nil, source: IPv6Address, sourcePort: Int = 546,
                    serverAddress: IPv6Address? = nil) {
            self.port = port
            self.interface = interface
            self.source = source
            self.sourcePort = sourcePort
            self.serverAddress = serverAddress
        }
    }

    public struct Reply: Sendable, Equatable {
        public var packet: DHCPv6Packet
        public var destination: IPv6Address
        public var destinationPort: Int
        /// Option 59 of the reply, for the log and the timeline.
        public var bootFileURL: String?
        /// The address handed out (stateful), for the log.
        public var address: IPv6Address?
        public var bytes: [UInt8] { packet.bytes }
    }

    /// Why a request got no answer; `rawValue` is the metrics and log label.
    public enum Silence: String, Sendable, Error, CaseIterable {
        /// Advertise, Reply, Reconfigure, Relay-reply: sent by servers, not to them.
        case serverMessage = "server_message"
        /// No Client ID where RFC 8415 §16 requires one, a Solicit naming a server, or the
        /// source is not a unicast address.
        case badMessage = "bad_message"
        /// Names another server (its Server ID is not ours).
        case notForUs = "not_for_us"
        /// Boot-only mode and the client does not netboot (no option 61, no PXEClient or
        /// HTTPClient vendor class, no iPXE user class, option 59 not requested).
        case notNetboot = "not_netboot"
        /// A message boot-only mode has nothing to say to (Renew, Rebind, Release, Decline,
        /// Confirm: the site server holds the addresses).
        case unsupportedMessageType = "unsupported_message_type"
        case ignoredByPolicy = "ignored_by_policy"
        case noDecision = "no_decision"
        /// The decision has a bare file name and the arrival interface has no global or
        /// unique-local address to make a `tftp://` URL with (set next-server or a URL).
        case noServerAddress = "no_server_address"
        /// Stateful: no range serves the link, and boot-only answers are off.
        case notServed = "not_served"
        case poolExhausted = "pool_exhausted"
        case released
        case declined
        /// Confirm or Rebind without any address to speak of.
        case noAddresses = "no_addresses"
        /// Longer than an IPv6 minimum-MTU datagram can carry (1232 bytes of UDP payload).
        case replyTooLarge = "reply_too_large"
        /// The binding could not be made durable in time (the client retries).
        case stateNotDurable = "state_not_durable"
    }

    /// What `screen` found: the request, and whether the policy should be asked.
    public struct Screened: Sendable {
        public var packet: DHCPv6Packet
        public var netboot: Bool
        /// The stateful range serving the client's link, nil in boot-only mode.
        public var range: DHCPv6Range?
    }

    /// What the answer did to the pool: the journal mark to wait for before sending.
    public struct Outcome: Sendable {
        public var result: Result<Reply, Silence>
        public var mark: UInt64 = 0
    }

    public static let maximumReply = 1232
    /// Options a decision cannot set in a DHCPv6 reply: identities, addresses, status, relay
    /// framing, the boot file URL (that is `filename`) and the vendor class (set by firmware kind).
    public static let serverOwned: Set<UInt16> = [1, 2, 3, 4, 5, 6, 9, 13, 14, 16, 18, 25, 26, 59]
    public static let pxeEnterprise: UInt32 = 343
    static let httpClient = Array("HTTPClient".utf8)
    /// Option 16 as a boot offer carries it (enterprise 343, one class), encoded once.
    static let pxeClientClass = DHCPv6Options.vendorClassValue(enterprise: pxeEnterprise, [Array("PXEClient".utf8)])
    static let httpClientClass = DHCPv6Options.vendorClassValue(enterprise: pxeEnterprise, [httpClient])

    public let serverDUID: DUID
    /// Stateful ranges; nil or empty: boot-only.
    public var pool: DHCPv6LeasePool?
    /// Answer netboot clients from links no range serves with boot-only Advertises.
    public var proxy: Bool

    public init(serverDUID: DUID, pool: DHCPv6LeasePool? = nil, proxy: Bool = true) {
        self.serverDUID = serverDUID
        self.pool = pool
        self.proxy = proxy
    }

    /// A netboot client: what EDK2 PXE/HTTP boot and iPXE all send one of.
    public static func isNetboot(_ m: DHCPv6Message) -> Bool {
        let o = m.options
        if o.contains(DHCPv6OptionCode.clientArchitecture) { return true }
        if let first = o.vendorClass?.data.first,
           ProxyDHCPResponder.vendorPrefixBytes.contains(where: { first.starts(with: $0.bytes) }) { return true }
        if o.userClasses?.contains("iPXE") == true { return true }
        return o.requestedOptions.contains(DHCPv6OptionCode.bootFileURL)
    }

    /// First step, before asking the policy.
    public func screen(_ packet: DHCPv6Packet, arrival: Arrival) -> Result<Screened, Silence> {
        let m = packet.message
        guard m.type.isFromClient else { return .failure(.serverMessage) }
        let peer = packet.relays.last?.peerAddress ?? arrival.source
        guard !arrival.source.isMulticast, !arrival.source.isAny, !peer.isMulticast else { return .failure(.badMessage) }
        let serverID = m.options[code: DHCPv6OptionCode.serverID]
        let hasClientID = m.options.contains(DHCPv6OptionCode.clientID)
        switch m.type {
        case .solicit, .rebind, .confirm:
            guard hasClientID, serverID == nil else { return .failure(.badMessage) }
        case .request, .renew, .release, .decline:
            guard hasClientID else { return .failure(.badMessage) }
            guard serverID == serverDUID.bytes else { return .failure(.notForUs) }
        case .informationRequest:
            if let serverID, serverID != serverDUID.bytes { return .failure(.notForUs) }
        default:
            return .failure(.serverMessage)
        }
        let netboot = Self.isNetboot(m)
        // The link: a relay's link-address, else our address on the arrival interface.
        let link = packet.relays.last.map { $0.linkAddress.isAny ? nil : $0.linkAddress } ?? arrival.serverAddress
        let range = link.flatMap { pool?.range(onLinkWith: $0) }
        if arrival.port == 4011 {
            // EDK2 after a boot-only Advertise: only its Request, only for the boot file.
            guard m.type == .request, netboot else { return .failure(.unsupportedMessageType) }
            return .success(Screened(packet: packet, netboot: true, range: nil))
        }
        if range == nil {
            guard proxy else { return .failure(.notServed) }
            guard netboot else { return .failure(.notNetboot) }
            switch m.type {
            case .solicit, .informationRequest: break
            // A Request with our Server ID on 547 in boot-only mode: a client that took our
            // boot-only Advertise for an address offer (we sent none); it gets the boot file.
            case .request: break
            default: return .failure(.unsupportedMessageType)
            }
        }
        return .success(Screened(packet: packet, netboot: netboot, range: range))
    }

    /// The boot file URL for a decision: as given when it has a scheme, else
    /// `tftp://[server]/name` with next-server (an IPv6 one) or our address on the link.
    public static func bootFileURL(_ decision: BootDecision, serverAddress: IPv6Address?) -> Result<String, Silence>? {
        guard let name = decision.filename, !name.isEmpty else { return nil }
        // The byte test first: Foundation's substring search is slow, and most names have no colon.
        if name.utf8.contains(UInt8(ascii: ":")), name.contains("://") { return .success(name) }
        let host = decision.nextServer.flatMap { IPv6Address($0.hasPrefix("[") ? String($0.dropFirst().prefix { $0 != "]" }) : $0) }
            .flatMap { $0.isLinkLocal || $0.isAny ? nil : $0 } ?? serverAddress
        guard let host else { return .failure(.noServerAddress) }
        return .success("tftp://\(host.bracketed)/" + (name.hasPrefix("/") ? String(name.dropFirst()) : name))
    }

    /// Builds the answer. `decision` is the policy's for a netboot client (nil when it was not
    /// asked or none decided). In stateful mode this takes and binds addresses.
    /// `mac`: the client's, as `BootRequest(dhcpv6:)` found it, for the lease record (found
    /// again when not given).
    public func answer(_ s: Screened, arrival: Arrival, decision: BootDecision?, mac known: String? = nil, now: Date = Date()) -> Outcome {
        let m = s.packet.message
        if decision?.ignore == true { return Outcome(result: .failure(.ignoredByPolicy)) }

        // The boot options, for netboot clients.
        var boot = DHCPv6Options()
        var url: String?
        if s.netboot, let decision {
            switch Self.bootFileURL(decision, serverAddress: arrival.serverAddress) {
            case let .success(u):
                url = u
                boot.append(DHCPv6OptionCode.bootFileURL, Array(u.utf8))
            case let .failure(reason):
                return Outcome(result: .failure(reason))
            case nil: break
            }
            // The decision's own options, as DHCPv6 options of those codes (60 boot file
            // parameters, 23 DNS servers, ...); the ones this server owns are never taken.
            for (code, value) in decision.options.sorted(by: { $0.key < $1.key }) where !Self.serverOwned.contains(UInt16(code)) {
                boot.append(UInt16(code), value)
            }
        }
        let isHTTP = m.options.vendorClass?.data.first?.starts(with: Self.httpClient) == true

        guard let range = s.range else {
            // Boot-only: nothing without a boot file (the client's own server says the rest).
            guard s.netboot else { return Outcome(result: .failure(.notNetboot)) }
            guard url != nil else { return Outcome(result: .failure(.noDecision)) }
            var o = header(m)
            o.list += boot.list
            // The class that makes EDK2 take this as a PXE (or HTTP) boot offer.
            o.append(DHCPv6OptionCode.vendorClass, isHTTP ? Self.httpClientClass : Self.pxeClientClass)
            let type: DHCPv6MessageType = m.type == .solicit ? .advertise : .reply
            return Outcome(result: finish(s, arrival: arrival, type: type, options: o, url: url, address: nil))
        }

        guard let pool else { return Outcome(result: .failure(.notServed)) }
        let duid = m.options[code: DHCPv6OptionCode.clientID] ?? []
        let mac = known ?? BootRequest(dhcpv6: s.packet, source: arrival.source, interface: nil, serverPort: nil).mac
        var o = header(m)
        var mark: UInt64 = 0
        var given: IPv6Address?
        let rapid = m.type == .solicit && m.options.contains(DHCPv6OptionCode.rapidCommit)
        let iaNAs = m.options.iaNAs
        // A shared store that did not answer a claim: no Reply (it could not grant what it
        // says); the client retransmits, as after a commit that was not durable in time.
        var unavailable = false
        switch m.type {
        case .solicit, .request, .renew, .rebind:
            let commit = m.type != .solicit || rapid
            for ia in iaNAs {
                let key = Lease6.key(duid: duid, iaid: ia.iaid)
                let asked = ia.addresses.first?.address
                var out = DHCPv6IANA(iaid: ia.iaid, t1: range.t1, t2: range.t2)
                var address: IPv6Address?
                switch m.type {
                case .renew, .rebind:
                    if let asked, pool.binding(client: key, address: asked, now: now) != nil || m.type == .rebind { address = asked }
                    if address == nil, let held = pool.lease(of: key)?.address, range.contains(held) { address = held }
                default:
                    switch pool.offer(client: key, in: range, requested: asked, now: now) {
                    case let .success(a): address = a
                    case .failure: address = nil
                    }
                }
                if let a = address, commit {
                    switch pool.bind(client: key, mac: mac, address: a, in: range, now: now) {
                    case let .success((_, m)): mark = max(mark, m)
                    case .failure(.storeUnavailable): unavailable = true
                    case .failure: address = nil
                    }
                }
                if let a = address {
                    out.options.append(DHCPv6OptionCode.iaAddress, DHCPv6IAAddress(
                        address: a, preferredLifetime: range.leaseTime, validLifetime: range.leaseTime).bytes)
                    given = given ?? a
                } else {
                    let status: DHCPv6Status = (m.type == .renew || m.type == .rebind) ? .noBinding : .noAddrsAvail
                    out.t1 = 0
                    out.t2 = 0
                    if m.type == .rebind, let asked, !range.contains(asked) {
                        // Not for this link: lifetimes 0 tell the client to stop using it.
                        out.options.append(DHCPv6OptionCode.iaAddress, DHCPv6IAAddress(address: asked, preferredLifetime: 0, validLifetime: 0).bytes)
                    } else {
                        out.options.append(DHCPv6OptionCode.statusCode, DHCPv6Options.statusValue(status, status == .noBinding ? "no binding for this IA" : "no addresses available"))
                    }
                }
                o.append(DHCPv6OptionCode.iaNA, out.bytes)
            }
            if iaNAs.isEmpty, m.type == .solicit, !s.netboot {
                return Outcome(result: .failure(.noAddresses))
            }
            if given == nil, m.type == .solicit, !iaNAs.isEmpty, url == nil {
                // Nothing to offer at all: RFC 8415 §18.3.9 Advertise with NoAddrsAvail.
                o.append(DHCPv6OptionCode.statusCode, DHCPv6Options.statusValue(.noAddrsAvail, "no addresses available"))
            }
            if unavailable { return Outcome(result: .failure(.stateNotDurable)) }
            if rapid { o.append(DHCPv6OptionCode.rapidCommit, []) }
        case .release, .decline:
            for ia in iaNAs {
                let key = Lease6.key(duid: duid, iaid: ia.iaid)
                for a in ia.addresses {
                    let mk = m.type == .release ? pool.release(client: key, address: a.address, now: now)
                        : pool.decline(client: key, address: a.address, now: now)
                    mark = max(mark, mk)
                }
            }
            o.append(DHCPv6OptionCode.statusCode, DHCPv6Options.statusValue(.success, m.type == .release ? "released" : "declined"))
            return Outcome(result: finish(s, arrival: arrival, type: .reply, options: o, url: nil, address: nil), mark: mark)
        case .confirm:
            let addresses = iaNAs.flatMap(\.addresses).map(\.address)
            guard !addresses.isEmpty else { return Outcome(result: .failure(.noAddresses)) }
            let onLink = addresses.allSatisfy { range.isOnLink($0) }
            o.append(DHCPv6OptionCode.statusCode, DHCPv6Options.statusValue(onLink ? .success : .notOnLink, onLink ? "on link" : "not on link"))
            return Outcome(result: finish(s, arrival: arrival, type: .reply, options: o, url: nil, address: nil))
        default:
            break // information-request: only the boot options
        }
        o.list += boot.list
        if isHTTP, url != nil {
            // EDK2 HTTP boot ignores a URL unless the offer says HTTPClient.
            o.append(DHCPv6OptionCode.vendorClass, Self.httpClientClass)
        }
        let type: DHCPv6MessageType = (m.type == .solicit && !rapid) ? .advertise : .reply
        return Outcome(result: finish(s, arrival: arrival, type: type, options: o, url: url, address: given), mark: mark)
    }

    /// Server ID, then the client's Client ID echoed.
    func header(_ m: DHCPv6Message) -> DHCPv6Options {
        var o = DHCPv6Options()
        o.append(DHCPv6OptionCode.serverID, serverDUID.bytes)
        if let id = m.options[code: DHCPv6OptionCode.clientID] { o.append(DHCPv6OptionCode.clientID, id) }
        return o
    }

    /// Wraps the reply in Relay-reply messages for a relayed request (each echoing its relay's
    /// Interface-ID, RFC 8415 §19.3) and addresses it to the sender: the client's source (port
    /// 546, or 4011 for EDK2's follow-up) or the relay's (547).
    func finish(_ s: Screened, arrival: Arrival, type: DHCPv6MessageType, options: DHCPv6Options, url: String?,
                address: IPv6Address?) -> Result<Reply, Silence> {
        let message = DHCPv6Message(type: type, transactionID: s.packet.message.transactionID, options: options)
        let relays = s.packet.relays.map { r -> DHCPv6RelayMessage in
            var o = DHCPv6Options()
            if let id = r.options[code: DHCPv6OptionCode.interfaceID] { o.append(DHCPv6OptionCode.interfaceID, id) }
            return DHCPv6RelayMessage(type: .relayReply, hopCount: r.hopCount, linkAddress: r.linkAddress, peerAddress: r.peerAddress, options: o)
        }
        let packet = DHCPv6Packet(relays: relays, message: message)
        guard packet.bytes.count <= Self.maximumReply else { return .failure(.replyTooLarge) }
        return .success(Reply(packet: packet, destination: arrival.source, destinationPort: arrival.sourcePort,
                              bootFileURL: url, address: address))
    }
}
