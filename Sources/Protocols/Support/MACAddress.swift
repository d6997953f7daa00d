/// The one MAC normaliser: every place that keys something by a client's hardware address
/// (state, scripts, the control API later) spells it the same way.
public enum MACAddress {
    /// Lower-case colon form, or nil when `text` is not an Ethernet MAC address. Accepts
    /// `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456` and `5254.0012.3456`, in
    /// either case.
    public static func normalize(_ text: String) -> String? {
        var hex: [UInt8] = []
        hex.reserveCapacity(12)
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "."): continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): hex.append(c)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): hex.append(c + 32)
            default: return nil
            }
            if hex.count > 12 { return nil }
        }
        guard hex.count == 12 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(17)
        for (i, c) in hex.enumerated() {
            if i > 0 && i % 2 == 0 { out.append(UInt8(ascii: ":")) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
