import Foundation
import Logging
import Metrics
import NIOCore
import Protocols

/// The one path every request takes, whichever server or tool it comes from (`serve`'s DHCP,
/// TFTP and HTTP servers, `bootpolicy test`, `explain`, the parity test):
/// 1. **enrich**: a DHCP request's datagram is kept as the client's facts; a TFTP or HTTP request
///    is told what the same client's DHCP request said (arch, firmware, classes, UUID, relay),
///    and the address it came from is tied to its MAC;
/// 2. **decide**: the policy chain runs;
/// 3. **remember**: the iPXE script a DHCP decision generated is kept for the client and served
///    when it asks for the decided file by TFTP or for the script endpoint over HTTP (unless a
///    `tftp`/`http` hook decides otherwise first); and whatever the chain changed in the
///    client's state is durable before the decision is returned, so before any answer leaves.
public final class BootPipeline: TracingBootDecider, @unchecked Sendable {
    public let chain: BootDecider
    public let directory: ClientDirectory
    public let scriptPath: String
    private let logger: Logger
    private let unsaved = Counter(label: "bootpolicy_state_unsaved_answers_total")

    public init(chain: BootDecider, directory: ClientDirectory = ClientDirectory(), scriptPath: String = "/boot.ipxe",
                logger: Logger = Logger(label: "bootpolicy.pipeline")) {
        self.chain = chain
        self.directory = directory
        self.scriptPath = scriptPath
        self.logger = logger
    }

    /// A datagram for a DHCP request that came without one (a fixture, a policy test): the
    /// options it was decoded from, encoded again.
    static func datagram(for r: BootRequest) -> [UInt8] {
        if r.family == .ipv6 { return datagram(forIPv6: r) }
        var message = DHCPMessage(op: .request, xid: r.xid ?? 0,
                                  giaddr: r.relay.flatMap { IPv4Address($0.giaddr) } ?? .any,
                                  options: DHCPOptions(r.options.sorted { $0.key < $1.key }.map {
                                      DHCPOption(code: $0.key, value: $0.value) }))
        message.options.remove(52)
        return message.bytes
    }

    /// A DHCPv6 request's facts in DHCPv4's terms (93 architecture, 60 vendor class, 77 user
    /// class, 97 UUID): what the directory learns from them is what a later TFTP or HTTP request
    /// of the same machine is told, whichever family its DHCP spoke.
    static func datagram(forIPv6 r: BootRequest) -> [UInt8] {
        var options: [DHCPOption] = []
        if let a = r.archCode { options.append(DHCPOption(code: 93, value: [UInt8(a >> 8), UInt8(a & 0xff)])) }
        if let v = r.vendorClass { options.append(DHCPOption(code: 60, value: Array(v.utf8.prefix(255)))) }
        if let u = r.userClass.first { options.append(DHCPOption(code: 77, value: Array(u.utf8.prefix(255)))) }
        if let uuid = r.uuid.flatMap({ Hex.decode($0.replacingOccurrences(of: "-", with: "")) }), uuid.count == 16 {
            options.append(DHCPOption(code: 97, value: [0] + uuid))
        }
        return DHCPMessage(op: .request, xid: r.xid ?? 0, options: DHCPOptions(options)).bytes
    }

    /// Told every decision the pipeline makes (the decision journal, a shadow chain), on the
    /// deciding thread, before it is answered: each must only queue. Set before serving.
    public var observers: [DecisionObserver] = []

    public func decide(_ request: BootRequest, datagram: ByteBuffer) -> BootDecision? {
        let (decision, commit) = decideHoldingCommit(request, datagram: datagram)
        return commit == 0 || awaitCommit(through: commit, request) ? decision : nil
    }

    public func decideHoldingCommit(_ request: BootRequest, datagram: ByteBuffer) -> (decision: BootDecision?, commit: UInt64) {
        // Only a DHCP request's datagram holds facts; anything else learns as usual.
        guard request.kind == .dhcp else {
            let r = run(enriched(request), traced: false)
            return (r.decision, r.commit)
        }
        if request.family == .ipv6 {
            // The directory learns DHCPv4 facts: those of this DHCPv6 message, restated. The
            // observers (the journal) keep the DHCPv6 bytes themselves.
            if !request.mac.isEmpty { Self.datagram(forIPv6: request).withUnsafeBytes { directory.learn(mac: request.mac, datagram: $0) } }
        } else if !request.mac.isEmpty {
            datagram.withUnsafeReadableBytes { directory.learn(mac: request.mac, datagram: $0) }
        }
        let r = run((request, observers.isEmpty ? nil : Array(datagram.readableBytesView)), traced: false)
        return (r.decision, r.commit)
    }

    public func awaitCommit(through commit: UInt64) -> Bool {
        awaitCommit(through: commit, nil)
    }

    /// `decide` without waiting: nil when the chain has no free state at once (what step 1
    /// learned stays learned; doing it again is harmless). The caller waits for `commit` with
    /// `whenDurable` before it answers.
    public func decideIfFree(_ request: BootRequest) -> (decision: BootDecision?, commit: UInt64)? {
        let watched = !observers.isEmpty
        guard let r = run(enriched(request), {
            watched ? (chain as? TracingBootDecider)?.decideIfFreeTraced($0) ?? chain.decideIfFree($0).map { ($0.decision, []) }
                    : chain.decideIfFree($0).map { ($0.decision, []) }
        }) else { return nil }
        return (r.decision, r.commit)
    }

    public func whenDurable(through commit: UInt64, _ done: @escaping @Sendable (Bool) -> Void) {
        directory.state.whenDurable(through: commit) { [unsaved, logger, directory] ok in
            if !ok {
                unsaved.increment()
                logger.error("no answer: the state a decision changed could not be made durable in time",
                             metadata: ["store": "\(directory.location)"])
            }
            done(ok)
        }
    }

    public func decide(_ request: BootRequest) -> BootDecision? {
        let r = run(enriched(request), traced: false)
        return r.commit == 0 || awaitCommit(through: r.commit, request) ? r.decision : nil
    }

    public func decideTraced(_ request: BootRequest) -> (decision: BootDecision?, steps: [PolicyStep]) {
        let r = run(enriched(request), traced: true)
        return (r.commit == 0 || awaitCommit(through: r.commit, request) ? r.decision : nil, r.steps)
    }

    /// Durable before answered: waits for the commit that holds what a decision changed.
    private func awaitCommit(through commit: UInt64, _ request: BootRequest?) -> Bool {
        if directory.state.waitDurable(through: commit) { return true }
        unsaved.increment()
        logger.error("no answer: the state a decision changed could not be made durable in time",
                     metadata: ["mac": "\(request?.mac ?? "(a batch)")", "store": "\(directory.location)"])
        return false
    }

    /// Step 1 for a request that came without a datagram; a DHCP request's datagram is made
    /// from its options.
    private func enriched(_ request: BootRequest) -> (BootRequest, [UInt8]?) {
        var request = request
        if request.mac.isEmpty { return (request, nil) }
        if request.kind == .dhcp {
            let bytes = Self.datagram(for: request)
            bytes.withUnsafeBytes { directory.learn(mac: request.mac, datagram: $0) }
            return (request, bytes)
        } else if let learned = directory.dhcpFacts(mac: request.mac) {
            request.learn(from: learned)
        }
        return (request, nil)
    }

    /// Steps 2 and 3. `commit` is what the caller must wait for before answering: the store's
    /// mark when anything was queued while the chain ran (this request's changes, or another's
    /// in the same commit), else 0.
    private func run(_ request: (BootRequest, [UInt8]?), traced: Bool) -> (decision: BootDecision?, steps: [PolicyStep], commit: UInt64) {
        let trace = traced || !observers.isEmpty
        return run(request) { request -> (BootDecision?, [PolicyStep])? in
            trace ? (chain as? TracingBootDecider)?.decideTraced(request) ?? (chain.decide(request), [])
                  : (chain.decide(request), [])
        }!
    }

    /// `decide` nil: the chain could not start at once (`decideIfFree`); nothing is kept.
    private func run(_ input: (BootRequest, [UInt8]?), _ decide: (BootRequest) -> (BootDecision?, [PolicyStep])?)
        -> (decision: BootDecision?, steps: [PolicyStep], commit: UInt64)?
    {
        let (request, datagram) = input
        if !request.mac.isEmpty, let address = request.clientAddress, Self.isClientAddress(address),
           request.kind != .dhcp || request.relay == nil {
            // The address a request came from is the client's own, except a relayed DHCP
            // request's (the relay's): tie it to the MAC for file requests that carry none.
            directory.learn(mac: request.mac, address: address)
        }
        let before = directory.state.mark
        guard let (decided, steps) = decide(request) else { return nil }
        var decision = decided
        switch request.kind {
        case .dhcp:
            if let d = decision, !d.ignore, let text = d.ipxeScript, !request.mac.isEmpty {
                directory.keep(script: StoredScript(filename: d.filename, text: text, policy: d.policy, stored: Date()),
                               for: request.mac)
            }
        case .tftp, .http:
            if decision == nil, let script = storedScript(for: request) {
                decision = BootDecision(content: Array(script.text.utf8), contentType: "text/plain; charset=utf-8",
                                        note: "script generated at DHCP time", policy: script.policy)
            }
        }
        let after = directory.state.mark
        for observer in observers {
            observer.decided(request, datagram: datagram, decision: decision, steps: steps)
        }
        return (decision, steps, after != before ? after : 0)
    }

    private func storedScript(for request: BootRequest) -> StoredScript? {
        guard let path = request.path, let script = directory.script(for: request.mac) else { return nil }
        if request.kind == .http && path == scriptPath { return script }
        guard let filename = script.filename else { return nil }
        return Self.basename(path) == Self.basename(filename) ? script : nil
    }

    static func isClientAddress(_ address: String) -> Bool {
        guard let a = IPv4Address(address) else { return !address.isEmpty }
        return !a.isAny && a != .broadcast
    }

    static func basename(_ path: String) -> Substring {
        let trimmed = path.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? Substring(path)
        // An HTTP filename in a DHCP decision may carry a query string.
        return trimmed.split(separator: "?", maxSplits: 1).first ?? trimmed
    }
}

/// A request as an observer keeps it for its own thread. A DHCP request is kept as its
/// datagram and the few facts the server added, and decoded again there: the request's many
/// small allocations (options, classes, relay) are then freed by the thread that made them. An
/// observer's thread runs at idle priority, and a free of another thread's memory takes that
/// thread's malloc arena lock: held while the idle thread was preempted, it stalled the DHCP
/// threads' next malloc for milliseconds (p99 at 5,000 answers/s went from 0.12 to 0.2-1.1 ms).
public struct ObservedRequest: Sendable {
    public let kind: BootRequest.Kind
    public let mac: String
    private let request: BootRequest?
    public let datagram: [UInt8]?
    private let serverPort: Int?
    private let interface: String?
    private let source: String?
    private let serverAddress: String?

    public init(_ r: BootRequest, datagram: [UInt8]?) {
        kind = r.kind
        mac = r.mac
        if r.kind == .dhcp, let datagram {
            request = nil
            self.datagram = datagram
            serverPort = r.serverPort
            interface = r.interface
            source = r.clientAddress
            serverAddress = r.serverAddress
        } else {
            request = r
            self.datagram = nil
            serverPort = nil
            interface = nil
            source = nil
            serverAddress = nil
        }
    }

    /// The request as the chain saw it (nil: a datagram that no longer decodes).
    public var rebuilt: BootRequest? {
        if let request { return request }
        guard let datagram else { return nil }
        if let v6 = Self.dhcpv6(datagram) {
            var r = BootRequest(dhcpv6: v6, source: source.flatMap(IPv6Address.init), interface: interface, serverPort: serverPort)
            r.serverAddress = serverAddress
            return r
        }
        guard let message = try? DHCPMessage(bytes: datagram) else { return nil }
        var r = BootRequest(dhcp: message, serverPort: serverPort, interface: interface, source: source)
        r.serverAddress = serverAddress
        return r
    }
}

extension ObservedRequest {
    /// A DHCPv6 message (or Relay-forward chain), told from a DHCPv4 one by its first byte and
    /// length: a DHCPv4 message is at least 240 bytes and starts with op 1 or 2, which are
    /// Solicit and Advertise in DHCPv6, so only a short one or another type is DHCPv6 at once;
    /// otherwise the DHCPv4 magic cookie at 236 decides.
    static func dhcpv6(_ bytes: [UInt8]) -> DHCPv6Packet? {
        guard let first = bytes.first else { return nil }
        if bytes.count >= 240, first == 1 || first == 2, bytes[236..<240].elementsEqual([99, 130, 83, 99]) { return nil }
        return try? DHCPv6Packet(bytes: bytes)
    }
}

/// Told each decision a pipeline makes (`BootPipeline.observers`).
public protocol DecisionObserver: AnyObject, Sendable {
    /// On the deciding thread, before the answer leaves: queue, never wait. `request` is as the
    /// chain saw it (TFTP and HTTP requests enriched); `datagram` is a DHCP request's bytes.
    func decided(_ request: BootRequest, datagram: [UInt8]?, decision: BootDecision?, steps: [PolicyStep])
}

extension BootRequest {
    /// Fills what a TFTP/HTTP request cannot know from the same client's DHCP request.
    mutating func learn(from dhcp: BootRequest) {
        if archCode == nil { archCode = dhcp.archCode; arch = dhcp.arch }
        if firmware == .unknown { firmware = dhcp.firmware }
        if vendorClass == nil { vendorClass = dhcp.vendorClass }
        if userClass.isEmpty { userClass = dhcp.userClass }
        if !isIPXE { isIPXE = dhcp.isIPXE }
        if ipxeFeatures.isEmpty { ipxeFeatures = dhcp.ipxeFeatures }
        if uuid == nil { uuid = dhcp.uuid }
        if hostname == nil { hostname = dhcp.hostname }
        if relay == nil { relay = dhcp.relay }
    }
}
