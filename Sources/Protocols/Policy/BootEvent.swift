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
    /// Short human summary: "DISCOVER arch=efi-x64 firmware=uefi -> ipxe.efi (arch-aware)".
    public var summary: String
    /// Machine-readable details (arch, firmware, file, bytes, policy, outcome, ...).
    public var fields: [String: String]

    public init(
        time: Date = Date(), stage: Stage, mac: String, clientAddress: String? = nil,
        summary: String, fields: [String: String] = [:]
    ) {
        self.time = time
        self.stage = stage
        self.mac = mac
        self.clientAddress = clientAddress
        self.summary = summary
        self.fields = fields
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
