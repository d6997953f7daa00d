/// Option 77, user class. RFC 3004 defines a list of length-prefixed entries; iPXE, gPXE
/// and many others send one plain string ("iPXE"). Both forms decode to `entries`.
public struct UserClass: Sendable, Equatable {
    public enum Form: String, Sendable { case rfc3004, plain }

    public var entries: [String]
    public var form: Form

    public init(entries: [String], form: Form = .rfc3004) {
        self.entries = entries
        self.form = form
    }

    /// RFC 3004 §2 when the bytes parse exactly as non-empty length-prefixed entries, else a
    /// plain string.
    public init(bytes: [UInt8]) {
        var entries: [String] = []
        var i = 0
        var exact = !bytes.isEmpty
        while i < bytes.count && exact {
            let length = Int(bytes[i])
            if length == 0 || i + 1 + length > bytes.count { exact = false; break }
            entries.append(String(decoding: bytes[(i + 1)..<(i + 1 + length)], as: UTF8.self))
            i += 1 + length
        }
        if exact {
            self.entries = entries
            form = .rfc3004
        } else {
            self.entries = bytes.isEmpty ? [] : [ByteText.cString(bytes)]
            form = .plain
        }
    }

    public var bytes: [UInt8] {
        switch form {
        case .plain: return Array(entries.joined(separator: " ").utf8)
        case .rfc3004:
            return entries.flatMap { entry -> [UInt8] in
                let data = Array(entry.utf8.prefix(255))
                return [UInt8(data.count)] + data
            }
        }
    }
}
