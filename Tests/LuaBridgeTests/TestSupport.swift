import Foundation
import Logging
import Protocols
@testable import LuaBridge

/// Shared helpers for LuaBridge tests.
enum TestPolicies {
    static let dir: URL = Bundle.module.url(forResource: "Policies", withExtension: nil)!

    static func spec(_ file: String, name: String = "", _ config: [String: PolicyValue] = [:]) -> PolicySpec {
        PolicySpec(name: name, path: dir.appendingPathComponent(file).path, config: config)
    }

    static let logger: Logger = {
        var l = Logger(label: "test.luabridge")
        l.logLevel = .critical
        return l
    }()

    static func dhcp(mac: String = "52:54:00:12:34:56", ipxe: Bool = false, firmware: BootRequest.Firmware = .bios) -> BootRequest {
        BootRequest(kind: .dhcp, mac: mac, xid: 0x1234, messageType: "discover", archCode: 0, arch: "bios",
                    firmware: firmware, vendorClass: "PXEClient:Arch:00000:UNDI:002001", isIPXE: ipxe,
                    options: [60: Array("PXEClient".utf8), 53: [1]])
    }
}

/// Collects log lines (for tests that check logging).
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [(Logger.Level, String, Logger.Metadata)] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    var lines: [(Logger.Level, String, Logger.Metadata)] { lock.lock(); defer { lock.unlock() }; return _lines }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        lock.lock()
        _lines.append((event.level, event.message.description, event.metadata ?? [:]))
        lock.unlock()
    }
    var logger: Logger { Logger(label: "capture") { _ in self } }
}
