/// A policy that could not be loaded; `description` reads `file.lua:12: message`.
public struct PolicyLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The policy file name as it appears in messages (`default.lua`).
    public var file: String
    public var line: Int?
    public var message: String
    /// Full path of the policy that failed (the file named above, or the one that required it).
    public var path: String

    public init(file: String, line: Int? = nil, message: String, path: String = "") {
        self.file = file
        self.line = line
        self.message = message
        self.path = path
    }

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }

    /// Splits a Lua message `chunk:line: text` (traceback removed).
    static func parse(_ raw: String, file: String, path: String) -> PolicyLoadError {
        let msg = LuaMessage.firstLine(raw)
        if let loc = LuaMessage.location(msg) {
            return PolicyLoadError(file: loc.file, line: loc.line, message: loc.rest, path: path)
        }
        var rest = Substring(msg)
        if rest.hasPrefix(file + ": ") { rest = rest.dropFirst(file.count + 2) }
        return PolicyLoadError(file: file, line: nil, message: String(rest), path: path)
    }
}

enum LuaMessage {
    /// The message without Lua's "stack traceback:" part.
    static func firstLine(_ s: String) -> String {
        if let r = s.range(of: "\nstack traceback:") { return String(s[..<r.lowerBound]) }
        return s
    }

    /// `file:12: rest` -> (file, 12, rest).
    static func location(_ s: String) -> (file: String, line: Int, rest: String)? {
        var search = s.startIndex
        while let c = s[search...].firstIndex(of: ":") {
            let afterColon = s.index(after: c)
            let digits = s[afterColon...].prefix(while: { $0.isASCII && $0.isNumber })
            if !digits.isEmpty, let line = Int(digits) {
                let end = digits.endIndex
                if end < s.endIndex, s[end] == ":" {
                    var rest = s[s.index(after: end)...]
                    if rest.hasPrefix(" ") { rest = rest.dropFirst() }
                    return (String(s[..<c]), line, String(rest))
                }
            }
            search = afterColon
            if search >= s.endIndex { break }
        }
        return nil
    }
}
