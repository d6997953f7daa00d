/// Hardware address spellings. Canonical form is lower-case colon-separated.
public enum MACAddress {
    /// Accepts `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456` in any case.
    public static func normalize(_ text: String) -> String? {
        let hex = text.lowercased().filter { $0 != ":" && $0 != "-" && $0 != "." }
        guard hex.count == 12, hex.allSatisfy({ $0.isHexDigit }) else { return nil }
        var out = ""
        out.reserveCapacity(17)
        for (i, ch) in hex.enumerated() {
            if i > 0 && i % 2 == 0 { out.append(":") }
            out.append(ch)
        }
        return out
    }

    public static func format(_ bytes: some Collection<UInt8>) -> String {
        bytes.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}
