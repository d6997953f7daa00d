import Crypto
import Foundation

/// One way two answers to the same request differ: `field` names what differs, `from` and
/// `to` say it for each side in a form fit for a log line.
public struct DecisionDifference: Sendable, Equatable, Codable {
    public var field: String
    public var from: String
    public var to: String
    public init(field: String, from: String, to: String) {
        self.field = field
        self.from = from
        self.to = to
    }
}

/// What a client would see differently if one chain's decision were sent instead of another's
/// (`bootpolicy diff`, shadow chains). Only what reaches the client counts: which policy
/// decided and its note do not.
public enum DecisionComparison {
    /// The fields, in the order they are reported.
    public static let fields = ["silence", "filename", "next_server", "server_name", "script", "options", "address",
                                "path", "content", "content_type", "status", "refuse"]

    /// Nothing when the client would see the same answer. When one side stays silent and the
    /// other answers, that is the one difference (the rest would be noise).
    public static func differences(kind: BootRequest.Kind, _ a: BootDecision?, _ b: BootDecision?) -> [DecisionDifference] {
        let sa = silence(kind, a), sb = silence(kind, b)
        // Silent for no decision and silent for `ignore` look the same to the client.
        if (sa == "answers") != (sb == "answers") { return [DecisionDifference(field: "silence", from: sa, to: sb)] }
        var out: [DecisionDifference] = []
        func compare(_ field: String, _ x: String?, _ y: String?) {
            if x != y { out.append(DecisionDifference(field: field, from: x ?? "(none)", to: y ?? "(none)")) }
        }
        switch kind {
        case .dhcp:
            guard let a, let b, !a.ignore else { return [] }
            compare("filename", a.filename, b.filename)
            compare("next_server", a.nextServer, b.nextServer)
            compare("server_name", a.serverName, b.serverName)
            compare("script", a.ipxeScript.map(scriptSummary), b.ipxeScript.map(scriptSummary))
            if a.options != b.options { compare("options", optionsText(a.options), optionsText(b.options)) }
            compare("address", a.address, b.address)
        case .tftp, .http:
            // nil: the file of that name from the root, as without policies.
            compare("path", a?.path, b?.path)
            if a?.content != b?.content {
                compare("content", a?.content.map(contentSummary) ?? "(the file from the root)",
                        b?.content.map(contentSummary) ?? "(the file from the root)")
            }
            if kind == .http {
                compare("content_type", a?.contentType, b?.contentType)
                compare("status", a?.status.map(String.init), b?.status.map(String.init))
            }
            compare("refuse", a?.refuse, b?.refuse)
        }
        return out
    }

    /// "silent" or "answers" (DHCP); "refused" or "serves" (TFTP, HTTP).
    static func silence(_ kind: BootRequest.Kind, _ d: BootDecision?) -> String {
        switch kind {
        case .dhcp:
            guard let d else { return "silent (no policy decided)" }
            return d.ignore ? "silent (ignore)" : "answers"
        case .tftp, .http:
            // A refusal is an answer (an error packet, a status); the field says it.
            return "answers"
        }
    }

    /// A script is long: its size, a short digest, and the first line that tells it apart.
    public static func scriptSummary(_ text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let telling = lines.first { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty } ?? ""
        return "\(text.utf8.count) bytes sha256:\(digest(Array(text.utf8)))  \(telling.prefix(80))"
    }

    static func contentSummary(_ bytes: [UInt8]) -> String {
        if bytes.count <= 80, let s = String(validating: bytes, as: UTF8.self), !s.contains(where: { $0.isNewline }) {
            return "\"\(s)\""
        }
        return "\(bytes.count) bytes sha256:\(digest(bytes))"
    }

    static func optionsText(_ options: [UInt8: [UInt8]]) -> String {
        options.isEmpty ? "(none)" : options.keys.sorted().map { "\($0)=\(Hex.encode(options[$0]!))" }.joined(separator: " ")
    }

    /// The first 12 hex digits of SHA-256.
    public static func digest(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).prefix(6).map { String(format: "%02x", $0) }.joined()
    }
}
