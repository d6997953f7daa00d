/// The ProxyDHCP decision logic as pure functions: given a request, where it arrived and
/// what the policy decided, the reply to send (and where), or why to stay silent.
///
/// Mirrors dnsmasq 2.90 in `--dhcp-range=ADDR,proxy` mode (`src/rfc2131.c` proxy branch and
/// `src/dhcp.c` reply addressing); `docs/dnsmasq-parity.md` lists the deliberate differences.
public struct ProxyDHCPResponder: Sendable {
    /// Where and how a request arrived.
    public struct Arrival: Sendable, Equatable {
        /// Local port: 67 (DHCP) or 4011 (PXE boot server).
        public var port: Int
        /// Our address on the arrival interface (IP_PKTINFO), used for option 54 and siaddr.
        public var serverAddress: IPv4Address
        public var interface: String?
        /// The sender's address and port.
        public var source: IPv4Address
        public var sourcePort: Int

        public init(port: Int, serverAddress: IPv4Address, interface: String? = nil,
                    source: IPv4Address = .any, sourcePort: Int = 68) {
            self.port = port
            self.serverAddress = serverAddress
            self.interface = interface
            self.source = source
            self.sourcePort = sourcePort
        }
    }

    /// A reply and its destination.
    public struct Reply: Sendable, Equatable {
        public var message: DHCPMessage
        public var destination: IPv4Address
        public var destinationPort: Int
        /// Sent to 255.255.255.255 out of the arrival interface.
        public var broadcast: Bool
    }

    /// Why a request got no answer. `rawValue` is the metrics/log label.
    public enum Silence: String, Sendable, Error, CaseIterable {
        /// Option 60 does not start with PXEClient or HTTPClient.
        case notPXE = "not_pxe"
        /// A reply carrying our own server identifier (we heard our own broadcast).
        case ownReply = "own_reply"
        /// A BOOTREPLY from some other server.
        case serverMessage = "server_message"
        /// Relayed from a relay we are not configured to serve.
        case notForUs = "not_for_us"
        /// The policy said `ignore`.
        case ignoredByPolicy = "ignored_by_policy"
        /// No policy decided and there is no fallback.
        case noDecision = "no_decision"
        /// PXE without option 93: dnsmasq does not proxy these either.
        case noArchitecture = "no_architecture"
        /// Not a DISCOVER on 67, nor a DISCOVER/REQUEST on 4011 (or no option 53 at all).
        case unsupportedMessageType = "unsupported_message_type"
        /// A PXE boot-server request (option 43 sub-option 71) on 4011: we run no PXE menu
        /// services, like dnsmasq without `--pxe-service`.
        case bootServerRequest = "boot_server_request"
        /// The reply would be longer than the client accepts (576 bytes, or its option 57),
        /// even with options overloaded into `sname`/`file`: a policy's options, or a relay's
        /// option 82 (echoed whole, RFC 3046), are too long.
        case replyTooLarge = "reply_too_large"
        /// The decision changed state that could not be made durable in time: the answer is
        /// withheld, so the client is never told what the server would forget (it retries).
        case stateNotDurable = "state_not_durable"
        // Full DHCP (`FullDHCPResponder`):
        /// Option 61 shorter than 2 bytes, 50 or 54 not 4, or a REQUEST with no address at all.
        case badOption = "bad_option"
        /// Every address of the range is held, quarantined or reserved.
        case poolExhausted = "pool_exhausted"
        /// A REQUEST naming another server (option 54): the client took that server's offer.
        case otherServerChosen = "other_server_chosen"
        /// INIT-REBOOT for an address we have no record of this client holding (RFC 2131
        /// §4.3.2: remain silent).
        case noLeaseRecord = "no_lease_record"
        /// DHCPRELEASE: journaled, never answered.
        case released
        /// DHCPDECLINE: the address quarantined, never answered.
        case declined
        /// `--no-proxy` and the request is from no subnet of a `--dhcp-range`.
        case notServed = "not_served"
    }

    /// Relays (giaddr) we answer; nil answers any relay.
    public var relayNetworks: [IPv4Network]?
    public init(relayNetworks: [IPv4Network]? = nil) {
        self.relayNetworks = relayNetworks
    }

    /// Not 0/8, loopback, multicast or class E: an address a reply may be unicast to.
    static func isUnicast(_ address: IPv4Address) -> Bool {
        let first = address.rawValue >> 24
        return first != 0 && first != 127 && first < 224
    }

    static let offerBytes: [UInt8] = [DHCPMessageType.offer.rawValue]
    static let ackBytes: [UInt8] = [DHCPMessageType.ack.rawValue]

    /// The vendor class prefixes we serve and echo in option 60.
    public static let vendorPrefixes = ["PXEClient", "HTTPClient"]
    static let vendorPrefixBytes = vendorPrefixes.map { (text: $0, bytes: Array($0.utf8)) }

    /// First step, before asking the policy: is this a request we would answer at all?
    /// Returns the echoed vendor prefix, or why not.
    public func screen(_ request: DHCPMessage, arrival: Arrival) -> Result<String, Silence> {
        if request.op == .reply {
            return .failure(request.serverIdentifier == arrival.serverAddress ? .ownReply : .serverMessage)
        }
        // Compared as bytes: no String for option 60 on every request.
        guard let vendor = request.options[code: 60],
              let prefix = Self.vendorPrefixBytes.first(where: { vendor.starts(with: $0.bytes) })?.text else {
            return .failure(.notPXE)
        }
        if !arrival.serverAddress.isLoopback, !request.ciaddr.isAny, !Self.isUnicast(request.ciaddr) {
            return .failure(.notForUs)
        }
        if !request.giaddr.isAny {
            // A relay must be a plain unicast address (not 0/8, loopback, multicast, class E),
            // and one we serve when a filter is configured.
            if !Self.isUnicast(request.giaddr) { return .failure(.notForUs) }
            if let networks = relayNetworks, !networks.contains(where: { $0.contains(request.giaddr) }) {
                return .failure(.notForUs)
            }
        }
        let type = request.messageType
        if arrival.port == 4011, type == .request || type == .inform, request.pxeVendorOptions?.bootItem != nil {
            return .failure(.bootServerRequest)
        }
        guard request.options[code: 93] != nil else { return .failure(.noArchitecture) }
        switch (arrival.port, type) {
        case (4011, .discover?), (4011, .request?), (_, .discover?): return .success(prefix)
        default: return .failure(.unsupportedMessageType)
        }
    }

    /// Builds the reply for `request`, or says why not.
    public func reply(to request: DHCPMessage, arrival: Arrival, decision: BootDecision?) -> Result<Reply, Silence> {
        reply(to: request, arrival: arrival, screened: screen(request, arrival: arrival), decision: decision)
    }

    /// The same, for a caller that already screened the request (the server does, to know
    /// whether to ask the policy at all): screening runs once per packet.
    func reply(to request: DHCPMessage, arrival: Arrival, screened: Result<String, Silence>,
               decision: BootDecision?) -> Result<Reply, Silence> {
        let prefix: String
        switch screened {
        case let .failure(reason): return .failure(reason)
        case let .success(p): prefix = p
        }
        guard let decision else { return .failure(.noDecision) }
        if decision.ignore { return .failure(.ignoredByPolicy) }

        // dnsmasq takes the first code of option 93; a malformed list reads as 0.
        let archBytes = request.options[code: 93] ?? []
        let arch = archBytes.count >= 2 ? UInt16(archBytes[0]) << 8 | UInt16(archBytes[1]) : 0
        let isDiscover = request.messageType == .discover

        var reply = request
        reply.op = .reply
        reply.overload = nil
        reply.yiaddr = .any
        if isDiscover || request.ciaddr.isAny {
            reply.ciaddr = .any
            reply.broadcast = true
        }
        reply.sname = ZeroFields.sname
        reply.file = ZeroFields.file
        // EFI clients (arch >= 6) are pointed at us on 4011: siaddr is ours and the PXE menu
        // (option 43) is withheld on 67.
        let redirect4011 = arch >= 6
        if redirect4011 { reply.siaddr = arrival.serverAddress }
        if let next = decision.nextServer.flatMap(IPv4Address.init) { reply.siaddr = next }
        // A name that fits goes where dnsmasq puts it, the BOOTP field (NUL-terminated). A
        // longer one is never cut: it goes whole in option 67 (66 for the server name), which
        // iPXE and EDK2's PXE read before the field, and the field stays empty rather than
        // naming a file that does not exist. Over 255 bytes the policy's decision was
        // already refused (one option holds 255).
        var longFile: [UInt8]?
        var longName: [UInt8]?
        if let file = decision.filename {
            if file.utf8.count <= 127 { reply.file = DHCPMessage.fit(file.utf8, 128) } else { longFile = Array(file.utf8.prefix(255)) }
        }
        if let name = decision.serverName {
            if name.utf8.count <= 63 { reply.sname = DHCPMessage.fit(name.utf8, 64) } else { longName = Array(name.utf8.prefix(255)) }
        }

        var options = DHCPOptions()
        options.reserveCapacity(8 + decision.options.count)
        // The fixed values are arrays made once: building each per reply was an allocation.
        options.set(53, isDiscover ? Self.offerBytes : Self.ackBytes)
        options.set(54, arrival.serverAddress.bytes)
        options.set(60, Self.vendorPrefixBytes.first { $0.text == prefix }?.bytes ?? Array(prefix.utf8))
        if let uuid = request.options[code: 97], uuid.count >= 17 {
            options.set(97, Array(uuid.prefix(17)))
        }
        if arrival.port == 4011 || !redirect4011 {
            options.set(43, Self.pxeMenuOptionBytes)
        }
        for code in decision.options.isEmpty ? [] : decision.options.keys.sorted() where ![0, 52, 53, 54, 82, 255].contains(code) {
            options.set(code, decision.options[code]!)
        }
        if let longName { options.set(66, longName) }
        if let longFile { options.set(67, longFile) }
        if let agent = request.options[code: 82] { options.set(82, agent) }
        reply.options = options
        guard reply.fit(within: Self.replyLimit(for: request)) else { return .failure(.replyTooLarge) }

        return .success(Self.address(reply, request: request, arrival: arrival))
    }

    /// The longest reply `request`'s client accepts, in DHCP bytes: 576 (RFC 2131 §2: an
    /// options field of 312) less 28 for the IP and UDP headers, or its option 57 less the
    /// same (RFC 2132 §9.10), capped at an Ethernet frame so no reply is fragmented.
    public static func replyLimit(for request: DHCPMessage) -> Int {
        let accepted = request.maxMessageSize.map { max(576, min(1500, Int($0))) } ?? 576
        return accepted - 28
    }

    /// Option 43 as dnsmasq sends it with `--pxe-prompt=PXE,0` and no `--pxe-service`:
    /// discovery control 8 (no menu, boot the file in the reply), prompt "PXE" with timeout 0.
    public static let pxeMenuOptions: PXEVendorOptions = {
        var pxe = PXEVendorOptions()
        pxe.discoveryControl = 8
        pxe.menuPrompt = .init(timeout: 0, prompt: "PXE")
        return pxe
    }()
    static let pxeMenuOptionBytes = pxeMenuOptions.bytes

    /// RFC 2131 §4.1 addressing as dnsmasq does it: to the relay's port 67 when relayed; to
    /// ciaddr when the client has one; otherwise broadcast to port 68.
    /// A request that arrived over loopback (tests on 127.0.0.1) is always answered to its
    /// sender, whatever giaddr/ciaddr say: broadcasts cannot reach a loopback client, and a
    /// loopback socket must never send anywhere else.
    static func address(_ reply: DHCPMessage, request: DHCPMessage, arrival: Arrival) -> Reply {
        // Loopback (tests): always back to the sender, never anywhere else.
        if arrival.serverAddress.isLoopback {
            return Reply(message: reply, destination: arrival.source.isLoopback ? arrival.source : .loopback,
                         destinationPort: arrival.sourcePort, broadcast: false)
        }
        var destination = arrival.source
        var port = arrival.sourcePort
        if arrival.port == 4011, !reply.ciaddr.isAny { destination = reply.ciaddr }
        if !reply.giaddr.isAny {
            return Reply(message: reply, destination: reply.giaddr, destinationPort: 67, broadcast: false)
        }
        if !reply.ciaddr.isAny {
            if destination != reply.ciaddr || port == 0 || destination.isAny {
                destination = reply.ciaddr
                port = 68
            }
            return Reply(message: reply, destination: destination, destinationPort: port, broadcast: false)
        }
        return Reply(message: reply, destination: .broadcast, destinationPort: 68, broadcast: true)
    }
}

/// An IPv4 network (address/prefix), for relay filters.
public struct IPv4Network: Sendable, Hashable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int

    public init(address: IPv4Address, prefixLength: Int) {
        self.prefixLength = max(0, min(32, prefixLength))
        self.address = IPv4Address(rawValue: address.rawValue & Self.mask(self.prefixLength))
    }

    /// "192.168.77.0/24" (a bare address is /32).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let address = IPv4Address(String(parts[0])) else { return nil }
        var length = 32
        if parts.count == 2 {
            guard let l = Int(parts[1]), (0...32).contains(l) else { return nil }
            length = l
        }
        self.init(address: address, prefixLength: length)
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << (32 - UInt32(length)) }

    public func contains(_ other: IPv4Address) -> Bool {
        other.rawValue & Self.mask(prefixLength) == address.rawValue
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
