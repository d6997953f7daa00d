/// Option 53 (RFC 2132 §9.6, RFC 4388 for the lease query types).
public enum DHCPMessageType: UInt8, Sendable, CaseIterable {
    case discover = 1, offer, request, decline, ack, nak, release, inform
    case forceRenew = 9, leaseQuery, leaseUnassigned, leaseUnknown, leaseActive

    /// Lower-case name as policies see it (`discover`, `ack`, `leasequery`...).
    public var name: String {
        switch self {
        case .forceRenew: return "forcerenew"
        case .leaseQuery: return "leasequery"
        case .leaseUnassigned: return "leaseunassigned"
        case .leaseUnknown: return "leaseunknown"
        case .leaseActive: return "leaseactive"
        default: return String(describing: self)
        }
    }
}
