import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Protocols

/// Wraps the policy chain with what ties one client's requests together:
/// - a TFTP or HTTP request is told what the client's last DHCP request said (arch, firmware,
///   vendor and user class, UUID, hostname, iPXE features), so `tftp`/`http` hooks see
///   `req.arch` without the client repeating it;
/// - the iPXE script a DHCP decision generated is kept for that MAC and served when the same
///   client asks for the decided filename by TFTP, or for the script endpoint over HTTP, unless
///   a `tftp`/`http` hook decides otherwise first.
final class HostDecider: BootDecider, @unchecked Sendable {
    struct Script {
        var filename: String?
        var text: String
        var policy: String?
    }

    /// What a TFTP/HTTP request cannot know but the same client's DHCP request said: that
    /// request decoded again from its datagram (see `DatagramCache` for why bytes are kept and
    /// not the decoded fields). File requests are a few per boot against a DHCP answer per
    /// packet, so they pay the decode.
    static func dhcpFacts(_ datagram: [UInt8]) -> BootRequest? {
        guard let message = try? DHCPMessage(bytes: datagram) else { return nil }
        return BootRequest(dhcp: message, serverPort: nil, interface: nil, source: nil)
    }

    /// A datagram for a DHCP request that came without one (a caller other than the ProxyDHCP
    /// server): the options it was decoded from, encoded again.
    static func datagram(for r: BootRequest) -> [UInt8] {
        var message = DHCPMessage(op: .request, xid: r.xid ?? 0,
                                  giaddr: r.relay.flatMap { IPv4Address($0.giaddr) } ?? .any,
                                  options: DHCPOptions(r.options.sorted { $0.key < $1.key }.map {
                                      DHCPOption(code: $0.key, value: $0.value) }))
        message.options.remove(52)
        return message.bytes
    }

    let chain: BootDecider
    let scriptPath: String
    private let lock = NIOLock()
    private var scripts: ClientCache<Script>
    private let facts: DatagramCache

    init(chain: BootDecider, scriptPath: String = "/boot.ipxe", ttl: TimeInterval = 3600, capacity: Int = 16_384) {
        self.chain = chain
        self.scriptPath = scriptPath
        scripts = ClientCache(capacity: capacity, ttl: ttl)
        facts = DatagramCache(capacity: capacity, ttl: ttl)
    }

    func decide(_ request: BootRequest, datagram: ByteBuffer) -> BootDecision? {
        // Only a DHCP request's datagram holds facts; anything else learns as usual.
        guard request.kind == .dhcp else { return decide(request) }
        if !request.mac.isEmpty {
            datagram.withUnsafeReadableBytes { bytes in lock.withLock { facts.set(request.mac, bytes) } }
        }
        return decided(request)
    }

    func decide(_ request: BootRequest) -> BootDecision? {
        var request = request
        if request.kind == .dhcp {
            if !request.mac.isEmpty {
                let bytes = Self.datagram(for: request)
                bytes.withUnsafeBytes { bytes in lock.withLock { facts.set(request.mac, bytes) } }
            }
        } else if !request.mac.isEmpty, let stored = lock.withLock({ facts.get(request.mac) }),
                  let learned = Self.dhcpFacts(stored) {
            request.learn(from: learned)
        }
        return decided(request)
    }

    /// The chain's decision, with the script a DHCP decision generated kept for the client's
    /// next TFTP/HTTP request, and served there when no hook decided otherwise.
    private func decided(_ request: BootRequest) -> BootDecision? {
        let decision = chain.decide(request)
        switch request.kind {
        case .dhcp:
            if let decision, !decision.ignore, let text = decision.ipxeScript, !request.mac.isEmpty {
                let script = Script(filename: decision.filename, text: text, policy: decision.policy)
                lock.withLock { scripts.set(request.mac, script) }
            }
            return decision
        case .tftp, .http:
            if decision != nil { return decision }
            guard let script = storedScript(for: request) else { return nil }
            return BootDecision(content: Array(script.text.utf8), contentType: "text/plain; charset=utf-8",
                                note: "script generated at DHCP time", policy: script.policy)
        }
    }

    private func storedScript(for request: BootRequest) -> Script? {
        guard !request.mac.isEmpty, let path = request.path else { return nil }
        guard let script = lock.withLock({ scripts.get(request.mac) }) else { return nil }
        if request.kind == .http && path == scriptPath { return script }
        guard let filename = script.filename else { return nil }
        return Self.basename(path) == Self.basename(filename) ? script : nil
    }

    static func basename(_ path: String) -> Substring {
        let trimmed = path.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? Substring(path)
        // An HTTP filename in a DHCP decision may carry a query string.
        return trimmed.split(separator: "?", maxSplits: 1).first ?? trimmed
    }
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
