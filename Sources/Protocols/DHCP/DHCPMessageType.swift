/// Option 53 (RFC 2132 §9.6, RFC 4388 for the lease query types).
public enum DHCPMessageType: UInt8, Sendable, CaseIterable {
    case discover = 1, offer, request, decline, ack, nak, release, inform
    case forceRenew = 9, leaseQuery, leaseUnassigned, leaseUnknown, leaseActive

    /// Lower-case name as policies see it (`discover`, `ack`, `leasequery`...). Spelled out:
    /// `String(describing:)` went through reflection on every request.
    public var name: String {
        switch self {
        case .discover: return "discover"
        case .offer: return "offer"
        case .request: return "request"
        case .decline: return "decline"
        case .ack: return "ack"
        case .nak: return "nak"
        case .release: return "release"
        case .inform: return "inform"
        case .forceRenew: return "forcerenew"
        case .leaseQuery: return "leasequery"
        case .leaseUnassigned: return "leaseunassigned"
        case .leaseUnknown: return "leaseunknown"
        case .leaseActive: return "leaseactive"
        }
    }
}
