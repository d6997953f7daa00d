/// Option 82, relay agent information (RFC 3046): sub-options in order; circuit id (1) and
/// remote id (2) typed, everything else kept raw.
public struct RelayAgentInfo: Sendable, Equatable {
    public var subOptions: [DHCPOption]

    public init(subOptions: [DHCPOption] = []) { self.subOptions = subOptions }

    public init(circuitID: [UInt8]? = nil, remoteID: [UInt8]? = nil) {
        subOptions = []
        if let circuitID { subOptions.append(DHCPOption(code: 1, value: circuitID)) }
        if let remoteID { subOptions.append(DHCPOption(code: 2, value: remoteID)) }
    }

    /// RFC 3046 §2.0: no pad, no end; a zero-length sub-option is tolerated (seen from real
    /// relays); a length running past the end is an error.
    public init(bytes: [UInt8]) throws {
        do {
            subOptions = try TLV.parse(bytes[...], area: "option 82", endsWith255: false, hasPad: false).entries
        } catch DHCPError.optionOverrun(let code, _) {
            throw DHCPError.badSubOption(option: 82, subOption: code, reason: "runs past the end of option 82")
        }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for sub in subOptions { TLV.write(code: sub.code, value: sub.value, into: &out) }
        return out
    }

    public var circuitID: [UInt8]? { subOptions.first { $0.code == 1 }?.value }
    public var remoteID: [UInt8]? { subOptions.first { $0.code == 2 }?.value }
}
