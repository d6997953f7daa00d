import Foundation
import NIOCore
import Protocols

/// The IPv4 side of the interfaces named with `--interface`: name, index and our address.
struct BoundInterface: Equatable, CustomStringConvertible {
    var name: String
    var index: Int
    var address: String
    /// Our first global or unique-local IPv6 address there (never link-local): DHCPv6's
    /// `tftp://` host and where TFTP and HTTP also listen with `--dhcp6`. nil: none.
    var address6: String? = nil
    var description: String { "\(name) (\(address)\(address6.map { ", " + $0 } ?? ""))" }

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
            let v6 = matches.compactMap { d -> IPv6Address? in
                guard case .v6(let a)? = d.address else { return nil }
                let ip = withUnsafeBytes(of: a.address.sin6_addr) { IPv6Address(bytes: $0) }
                return ip.flatMap { $0.isLinkLocal || $0.isLoopback || $0.isMulticast ? nil : $0 }
            }.first
            result.append(BoundInterface(name: name, index: v4.interfaceIndex, address: address, address6: v6?.description))
        }
        return result
    }
}

extension BoundInterface {
    /// The interface's MAC from sysfs (for the server's DUID-LL), nil if unreadable.
    static func hardwareAddress(of name: String) -> [UInt8]? {
        guard !name.contains("/"), let text = try? String(contentsOfFile: "/sys/class/net/\(name)/address", encoding: .utf8) else { return nil }
        let bytes = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").compactMap { UInt8($0, radix: 16) }
        return bytes.count == 6 && bytes != [0, 0, 0, 0, 0, 0] ? bytes : nil
    }
}
