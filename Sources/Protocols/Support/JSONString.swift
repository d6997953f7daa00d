/// A string as a JSON string literal (RFC 8259 section 7): the one quoting rule for every JSON
/// bootpolicy writes by hand (the JSON log lines, state rows).
public enum JSONString {
    /// Appends `s`, quoted and escaped, to `out`.
    public static func append(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    public static func quote(_ s: String) -> String {
        var out = ""
        append(s, to: &out)
        return out
    }
}
