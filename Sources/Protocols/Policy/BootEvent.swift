import Foundation

/// One step of a client's boot as a server saw it; the host keeps these for the status page,
/// `/api/clients` and the lab's timeline.
public struct BootEvent: Sendable, Equatable {
    public enum Stage: String, Sendable, Codable {
        case dhcp, tftp, http
    }

    public var time: Date
    public var stage: Stage
    public var mac: String
    public var clientAddress: String?
    /// What the timeline's client row shows (typed, so keeping an event never needs `fields`).
    public var arch: String?
    public var firmware: String?
    public var policy: String?
    public var file: String?

    /// What a ProxyDHCP event keeps besides the fields above to write its summary and fields
    /// when read. Plain values held in the event itself: recording one allocates nothing (a
    /// closure capturing them allocated its context per answer, and freeing it when the
    /// timeline let the event go touched memory long out of cache).
    public struct DHCPDetails: Sendable {
        public var interface: String?
        public var port: Int
        public var type: String?
        /// What follows the arrow in the summary: the file, `-`, or why it stayed silent.
        public var end: String
        public var outcome: String

        public init(interface: String?, port: Int, type: String?, end: String, outcome: String) {
            self.interface = interface
            self.port = port
            self.type = type
            self.end = end
            self.outcome = outcome
        }

        /// `PXE(eth0:67) 52:54:00:12:34:56 DISCOVER arch=bios firmware=bios`: how log lines and
        /// timeline summaries name a request.
        /// `tag` as dnsmasq logs it: PXE for ProxyDHCP, DHCP for full DHCP.
        public static func head(interface: String?, port: Int, mac: String, type: String?, arch: String?,
                                firmware: String, tag: String = "PXE") -> String {
            "\(tag)(\(interface ?? "-"):\(port)) \(mac) \(type?.uppercased() ?? "BOOTP") arch=\(arch ?? "-") firmware=\(firmware)"
        }
    }

    private enum Details: Sendable {
        case built(summary: String, fields: [String: String])
        case deferred(@Sendable () -> (summary: String, fields: [String: String]))
        case dhcp(DHCPDetails)
    }
    private var details: Details

    /// Short human summary: "DISCOVER arch=efi-x64 firmware=uefi -> ipxe.efi (arch-aware)".
    public var summary: String { resolved.summary }
    /// Machine-readable details (arch, firmware, file, bytes, policy, outcome, ...).
    public var fields: [String: String] { resolved.fields }

    /// Summary and fields together (a deferred event writes them once for both).
    public var resolved: (summary: String, fields: [String: String]) {
        switch details {
        case let .built(summary, fields): return (summary, fields)
        case let .deferred(make): return make()
        case let .dhcp(d):
            let arch = self.arch.flatMap { $0.isEmpty ? nil : $0 }
            let summary = DHCPDetails.head(interface: d.interface, port: d.port, mac: mac, type: d.type, arch: arch,
                                           firmware: firmware ?? "unknown") + " -> \(d.end)"
            var f: [String: String] = [:]
            f.reserveCapacity(8)
            f["arch"] = arch ?? ""
            f["firmware"] = firmware ?? "unknown"
            f["outcome"] = d.outcome
            f["port"] = String(d.port)
            if let file { f["file"] = file }
            if let policy { f["policy"] = policy }
            if let type = d.type { f["type"] = type }
            return (summary, f)
        }
    }

    public init(
        time: Date = Date(), stage: Stage, mac: String, clientAddress: String? = nil,
        summary: String, fields: [String: String] = [:]
    ) {
        self.init(time: time, stage: stage, mac: mac, clientAddress: clientAddress, arch: fields["arch"],
                  firmware: fields["firmware"], policy: fields["policy"], file: fields["file"] ?? fields["path"],
                  kept: .built(summary: summary, fields: fields))
    }

    /// An event whose summary and fields are written only when someone reads them (the status
    /// page, `/api/clients`). ProxyDHCP records one per answer; building them up front cost
    /// 4 of its 60 allocations per answer (counted with a uprobe on malloc at 10,000/s).
    public init(
        time: Date = Date(), stage: Stage, mac: String, clientAddress: String? = nil,
        arch: String?, firmware: String?, policy: String?, file: String?,
        details: @escaping @Sendable () -> (summary: String, fields: [String: String])
    ) {
        self.init(time: time, stage: stage, mac: mac, clientAddress: clientAddress, arch: arch, firmware: firmware,
                  policy: policy, file: file, kept: .deferred(details))
    }

    /// A ProxyDHCP answer's (or silence's) event; summary and fields are written when read.
    /// `arch` empty means the request named none (and clears the client row's arch).
    public init(
        time: Date = Date(), mac: String, clientAddress: String? = nil, arch: String, firmware: String,
        policy: String?, file: String?, dhcp: DHCPDetails
    ) {
        self.init(time: time, stage: .dhcp, mac: mac, clientAddress: clientAddress, arch: arch, firmware: firmware,
                  policy: policy, file: file, kept: .dhcp(dhcp))
    }

    private init(
        time: Date, stage: Stage, mac: String, clientAddress: String?, arch: String?, firmware: String?,
        policy: String?, file: String?, kept: Details
    ) {
        self.time = time
        self.stage = stage
        self.mac = mac
        self.clientAddress = clientAddress
        self.arch = arch
        self.firmware = firmware
        self.policy = policy
        self.file = file
        self.details = kept
    }

    public static func == (a: BootEvent, b: BootEvent) -> Bool {
        a.time == b.time && a.stage == b.stage && a.mac == b.mac && a.clientAddress == b.clientAddress
            && a.arch == b.arch && a.firmware == b.firmware && a.policy == b.policy && a.file == b.file
            && a.summary == b.summary && a.fields == b.fields
    }
}

/// Where servers report what happened. Must be cheap and thread-safe.
public protocol BootEventSink: Sendable {
    func record(_ event: BootEvent)
}

public struct NoEventSink: BootEventSink {
    public init() {}
    public func record(_ event: BootEvent) {}
}
