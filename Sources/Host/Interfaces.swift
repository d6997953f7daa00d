import NIOCore

/// The IPv4 side of the interfaces named with `--interface`: name, index and our address.
struct BoundInterface: Equatable, CustomStringConvertible {
    var name: String
    var index: Int
    var address: String
    var description: String { "\(name) (\(address))" }

    /// Resolves names to interfaces with an IPv4 address; an unknown name, or one with no
    /// IPv4 address, is an error that lists what does exist.
    static func resolve(_ names: [String]) throws -> [BoundInterface] {
        let devices = try System.enumerateDevices()
        var result: [BoundInterface] = []
        for name in names {
            let matches = devices.filter { $0.name == name }
            guard !matches.isEmpty else {
                let known = Set(devices.map(\.name)).sorted().joined(separator: ", ")
                throw ConfigError("--interface \(name): no such interface (have: \(known))")
            }
            guard let v4 = matches.first(where: { if case .v4 = $0.address { return true } else { return false } }),
                  let address = v4.address?.ipAddress
            else {
                throw ConfigError("--interface \(name): has no IPv4 address; ProxyDHCP needs one to put in option 54")
            }
            result.append(BoundInterface(name: name, index: v4.interfaceIndex, address: address))
        }
        return result
    }
}
