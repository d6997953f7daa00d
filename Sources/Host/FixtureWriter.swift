import Foundation
import Protocols

/// Writes one fixture per distinct client request, for `import` and `record`. Requests are
/// distinct by (MAC, message type, server port, arch, vendor class, option 175 presence): the
/// fourth DISCOVER retry from the same firmware adds nothing a policy test needs.
struct FixtureWriter {
    let directory: URL
    let origin: String
    var seen: Set<String> = []
    var written: [URL] = []

    init(directory: String, origin: String) throws {
        self.directory = URL(fileURLWithPath: directory, isDirectory: true)
        self.origin = origin
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
    }

    /// Returns the file written, or nil when the request was a duplicate or not a client request.
    mutating func add(_ message: DHCPMessage, serverPort: Int, source: String?, interface: String?, prefix: String) throws -> URL? {
        guard message.op == .request else { return nil }
        let request = BootRequest(dhcp: message, serverPort: serverPort, interface: interface, source: source)
        let key = [request.mac, request.messageType ?? "?", "\(serverPort)", request.arch ?? "-",
                   request.vendorClass ?? "-", request.options[175] == nil ? "" : "ipxe"].joined(separator: "|")
        guard seen.insert(key).inserted else { return nil }
        let name = Self.slug([prefix, request.firmware.rawValue, request.arch ?? "noarch", request.messageType ?? "dhcp",
                              serverPort == 67 ? nil : "\(serverPort)", request.mac.replacingOccurrences(of: ":", with: "")]
                                .compactMap { $0 }.joined(separator: "-"))
        let fixture = Fixture(name: name, origin: origin, message: message, serverPort: serverPort, source: source, interface: interface)
        return try write(fixture, as: name)
    }

    /// The same for a DHCPv6 message as it arrived (`bytes`, relays included): client
    /// messages only, distinct by (MAC or DUID, type, port, arch, vendor class, user class).
    mutating func add(_ packet: DHCPv6Packet, bytes: [UInt8], serverPort: Int, source: IPv6Address, prefix: String,
                      interface: String? = nil) throws -> URL? {
        guard packet.message.type.isFromClient else { return nil }
        let request = BootRequest(dhcpv6: packet, source: source, interface: interface, serverPort: serverPort)
        let who = request.mac.isEmpty ? (request.duid ?? "?") : request.mac
        let key = ["v6", who, request.messageType ?? "?", "\(serverPort)", request.arch ?? "-",
                   request.vendorClass ?? "-", request.userClass.joined(separator: ",")].joined(separator: "|")
        guard seen.insert(key).inserted else { return nil }
        let name = Self.slug([prefix, "v6", request.firmware.rawValue, request.arch ?? "noarch", request.messageType ?? "dhcp",
                              serverPort == 547 ? nil : "\(serverPort)", who.replacingOccurrences(of: ":", with: "").prefix(24).description]
                                .compactMap { $0 }.joined(separator: "-"))
        let fixture = Fixture(name: name, origin: origin, dhcpv6: bytes, serverPort: serverPort, source: source.description, interface: interface)
        return try write(fixture, as: name)
    }

    /// `name.json`, or `name-2.json`... when a file of another run already has that name.
    private mutating func write(_ fixture: Fixture, as name: String) throws -> URL {
        var url = directory.appendingPathComponent(name + ".json")
        var n = 2
        while FileManager.default.fileExists(atPath: url.path) && !written.contains(url) {
            url = directory.appendingPathComponent("\(name)-\(n).json"); n += 1
        }
        try fixture.encoded().write(to: url)
        written.append(url)
        return url
    }

    static func slug(_ s: String) -> String {
        String(s.lowercased().map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "-" })
    }
}
