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

    private enum Details: Sendable {
        case built(summary: String, fields: [String: String])
        case deferred(@Sendable () -> (summary: String, fields: [String: String]))
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
        }
    }

    public init(
        time: Date = Date(), stage: Stage, mac: String, clientAddress: String? = nil,
        summary: String, fields: [String: String] = [:]
    ) {
        self.time = time
        self.stage = stage
        self.mac = mac
        self.clientAddress = clientAddress
        self.arch = fields["arch"]
        self.firmware = fields["firmware"]
        self.policy = fields["policy"]
        self.file = fields["file"] ?? fields["path"]
        self.details = .built(summary: summary, fields: fields)
    }

    /// An event whose summary and fields are written only when someone reads them (the status
    /// page, `/api/clients`). ProxyDHCP records one per answer; building them up front cost
    /// 4 of its 60 allocations per answer (counted with a uprobe on malloc at 10,000/s).
    public init(
        time: Date = Date(), stage: Stage, mac: String, clientAddress: String? = nil,
        arch: String?, firmware: String?, policy: String?, file: String?,
        details: @escaping @Sendable () -> (summary: String, fields: [String: String])
    ) {
        self.time = time
        self.stage = stage
        self.mac = mac
        self.clientAddress = clientAddress
        self.arch = arch
        self.firmware = firmware
        self.policy = policy
        self.file = file
        self.details = .deferred(details)
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
