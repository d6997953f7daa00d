import Protocols

extension BootDecision {
    /// Hot path: reads the normalized decision straight from the wire bytes (no
    /// intermediate values). Layout is what `normalize_k` in shim.c writes: a table of
    /// field name -> boolean | integer | string, and `options` -> {code -> string}.
    init?(wire raw: UnsafeRawBufferPointer, policy: String) {
        var c = WireCursor(raw)
        guard c.tag() == UInt8(ascii: "t"), let n = c.u32() else { return nil }
        self.init(policy: policy)
        for _ in 0..<n {
            guard c.tag() == UInt8(ascii: "s"), let key = c.bytes() else { return nil }
            let tag = c.tag()
            switch tag {
            case UInt8(ascii: "b"):
                guard let b = c.byte() else { return nil }
                if key.elementsEqual("ignore".utf8) { ignore = b != 0 }
            case UInt8(ascii: "i"):
                guard let i = c.i64() else { return nil }
                if key.elementsEqual("status".utf8) { status = Int(i) }
            case UInt8(ascii: "s"):
                guard let v = c.bytes() else { return nil }
                switch key.count {
                case 4 where key.elementsEqual("path".utf8): path = String(decoding: v, as: UTF8.self)
                case 4 where key.elementsEqual("note".utf8): note = String(decoding: v, as: UTF8.self)
                case 7 where key.elementsEqual("address".utf8): address = String(decoding: v, as: UTF8.self)
                case 6 where key.elementsEqual("refuse".utf8): refuse = String(decoding: v, as: UTF8.self)
                case 7 where key.elementsEqual("content".utf8): content = Array(v)
                case 8 where key.elementsEqual("filename".utf8): filename = String(decoding: v, as: UTF8.self)
                case 11 where key.elementsEqual("next_server".utf8): nextServer = String(decoding: v, as: UTF8.self)
                case 11 where key.elementsEqual("server_name".utf8): serverName = String(decoding: v, as: UTF8.self)
                case 11 where key.elementsEqual("ipxe_script".utf8): ipxeScript = String(decoding: v, as: UTF8.self)
                case 12 where key.elementsEqual("content_type".utf8): contentType = String(decoding: v, as: UTF8.self)
                default: break
                }
            case UInt8(ascii: "t"):
                guard let m = c.u32() else { return nil }
                for _ in 0..<m {
                    guard c.tag() == UInt8(ascii: "i"), let code = c.i64(), c.tag() == UInt8(ascii: "s"),
                        let v = c.bytes(), let op = UInt8(exactly: code)
                    else { return nil }
                    options[op] = Array(v)
                }
            default:
                return nil
            }
        }
    }

    /// The decision as a Lua table (policy tests).
    var luaValue: LuaWire.Value {
        var p: [(LuaWire.Value, LuaWire.Value)] = []
        func s(_ k: String, _ v: String?) { if let v { p.append((.string(Array(k.utf8)), .string(Array(v.utf8)))) } }
        if ignore { p.append((.string(Array("ignore".utf8)), .bool(true))) }
        s("filename", filename); s("next_server", nextServer); s("server_name", serverName)
        s("ipxe_script", ipxeScript); s("content_type", contentType); s("path", path)
        s("refuse", refuse); s("note", note); s("policy", policy); s("address", address)
        if let content { p.append((.string(Array("content".utf8)), .string(content))) }
        if let status { p.append((.string(Array("status".utf8)), .int(Int64(status)))) }
        if !options.isEmpty {
            p.append((.string(Array("options".utf8)),
                      .table(options.sorted { $0.key < $1.key }.map { (.int(Int64($0.key)), .string($0.value)) })))
        }
        return .table(p)
    }
}

/// Reads the wire format (CLuaShim.h) from a raw buffer.
struct WireCursor {
    let p: UnsafeRawBufferPointer
    var i = 0
    init(_ p: UnsafeRawBufferPointer) { self.p = p }
    mutating func tag() -> UInt8? {
        guard i < p.count else { return nil }
        defer { i += 1 }
        return p[i]
    }
    mutating func byte() -> UInt8? { tag() }
    mutating func u32() -> UInt32? {
        guard p.count - i >= 4 else { return nil }
        defer { i += 4 }
        return p.loadUnaligned(fromByteOffset: i, as: UInt32.self)
    }
    mutating func i64() -> Int64? {
        guard p.count - i >= 8 else { return nil }
        defer { i += 8 }
        return p.loadUnaligned(fromByteOffset: i, as: Int64.self)
    }
    mutating func bytes() -> UnsafeRawBufferPointer? {
        guard let n = u32().map(Int.init), p.count - i >= n else { return nil }
        defer { i += n }
        return UnsafeRawBufferPointer(rebasing: p[i..<(i + n)])
    }
}
