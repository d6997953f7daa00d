import Foundation
import Testing
@testable import Clients

/// The package's root folder (fixtures live in `fixtures/`).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A fresh folder under the temp dir, removed by the caller.
func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-clients-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

final class TestClock: @unchecked Sendable {
    var t: Date
    init(_ t: Date = Date(timeIntervalSince1970: 1_000_000)) { self.t = t }
}

/// What every durable backend must keep across a close and reopen: state, a clear, an expiry
/// that passed while closed, a script with its file name and policy. Returns the reopened
/// directory (the caller closes it) for the backend's own checks.
func expectStateOutlivesAReopen(policy: String?, _ open: () throws -> ClientDirectory) throws -> ClientDirectory {
    let mac = "52:54:00:00:00:01"
    do {
        let d = try open()
        try d.state.set(mac: mac, ["installed": true, "n": 3, "at": "rack7", "x": 1.5], ttl: 3600)
        try d.state.set(mac: "52:54:00:00:00:02", ["gone": true], ttl: 3600)
        try d.state.clear(mac: "52:54:00:00:00:02")
        try d.state.set(mac: "52:54:00:00:00:03", ["short": true], ttl: 0.2)
        d.keep(script: StoredScript(filename: "boot.ipxe", text: "#!ipxe\nexit\n", policy: policy, stored: Date()), for: mac)
        #expect(d.state.waitDurable(through: d.state.mark))
        d.close()
    }
    Thread.sleep(forTimeInterval: 0.3)
    let d = try open()
    #expect(d.state.get(mac: mac) == ["installed": true, "n": 3, "at": "rack7", "x": 1.5])
    #expect(d.state.get(mac: "52:54:00:00:00:02") == nil, "a clear is durable too")
    #expect(d.state.get(mac: "52:54:00:00:00:03") == nil, "expired while the server was down")
    #expect(d.script(for: mac)?.text == "#!ipxe\nexit\n")
    #expect(d.script(for: mac)?.filename == "boot.ipxe")
    #expect(d.script(for: mac)?.policy == policy)
    return d
}
