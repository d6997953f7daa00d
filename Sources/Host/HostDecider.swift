import Foundation
import NIOConcurrencyHelpers
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

    /// What a TFTP/HTTP request cannot know but the same client's DHCP request said.
    ///
    /// A class, written once: every DHCP answer stores one and, under a flood of new MACs,
    /// pushes an old one out. As a struct it was copied into the cache entry field by field
    /// (a retain each) and its 150 bytes sat inline in a 16,384-entry dictionary; perf put
    /// that at a tenth of the answer's user-space time, as much as the Lua policy call.
    final class Facts {
        let archCode: UInt16?
        let arch: String?
        let firmware: BootRequest.Firmware
        let vendorClass: String?
        let userClass: [String]
        let isIPXE: Bool
        let ipxeFeatures: [String: Int]
        let uuid: String?
        let hostname: String?
        let relay: BootRequest.Relay?

        init(_ r: BootRequest) {
            archCode = r.archCode; arch = r.arch; firmware = r.firmware; vendorClass = r.vendorClass
            userClass = r.userClass; isIPXE = r.isIPXE; ipxeFeatures = r.ipxeFeatures; uuid = r.uuid
            hostname = r.hostname; relay = r.relay
        }
    }

    let chain: BootDecider
    let scriptPath: String
    private let lock = NIOLock()
    private var scripts: ClientCache<Script>
    private var facts: ClientCache<Facts>

    init(chain: BootDecider, scriptPath: String = "/boot.ipxe", ttl: TimeInterval = 3600, capacity: Int = 16_384) {
        self.chain = chain
        self.scriptPath = scriptPath
        scripts = ClientCache(capacity: capacity, ttl: ttl)
        facts = ClientCache(capacity: capacity, ttl: ttl)
    }

    func decide(_ request: BootRequest) -> BootDecision? {
        var request = request
        if request.kind == .dhcp {
            if !request.mac.isEmpty {
                let learned = Facts(request)
                lock.withLock { facts.set(request.mac, learned) }
            }
        } else if !request.mac.isEmpty, let learned = lock.withLock({ facts.get(request.mac) }) {
            request.learn(from: learned)
        }
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
    mutating func learn(from dhcp: HostDecider.Facts) {
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
