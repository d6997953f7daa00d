import Foundation
import Logging
import Protocols

/// One JSON object per line on stderr, for log shippers: time, level, label, message and the
/// metadata as string fields.
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    let label: String
    private static let lock = NSLock()

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        var fields: [String: String] = [:]
        for (k, v) in metadata { fields[k] = "\(v)" }
        if let extra { for (k, v) in extra { fields[k] = "\(v)" } }
        var line = "{\"time\":\(Self.quote(Self.timestamp())),\"level\":\(Self.quote(level.rawValue)),\"label\":\(Self.quote(label)),\"msg\":\(Self.quote(message.description))"
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) {
            line += ",\(Self.quote(k)):\(Self.quote(v))"
        }
        line += "}\n"
        Self.lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        Self.lock.unlock()
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    static func quote(_ s: String) -> String { JSONString.quote(s) }
}
