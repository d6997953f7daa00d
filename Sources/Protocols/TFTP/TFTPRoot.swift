/// TFTP serves from a `ConfinedRoot` (shared with HTTP); its refusals map onto TFTP error codes.
public typealias TFTPRoot = ConfinedRoot
public typealias TFTPFile = ConfinedFile

extension ConfinedRoot.Refusal {
    public var code: TFTPErrorCode {
        switch self {
        case .notFound: return .fileNotFound
        case .accessViolation: return .accessViolation
        case .busy: return .notDefined
        }
    }
}
