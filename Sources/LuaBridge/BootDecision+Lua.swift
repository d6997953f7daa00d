import Protocols

extension BootDecision {
    /// Reads the decision table the C side already validated and normalized.
    init?(normalized v: LuaWire.Value, policy: String) {
        guard case .table(let pairs) = v else { return nil }
        self.init(policy: policy)
        for (k, val) in pairs {
            guard let key = k.text else { continue }
            switch (key, val) {
            case ("ignore", .bool(let b)): ignore = b
            case ("filename", .string(let s)): filename = String(decoding: s, as: UTF8.self)
            case ("next_server", .string(let s)): nextServer = String(decoding: s, as: UTF8.self)
            case ("server_name", .string(let s)): serverName = String(decoding: s, as: UTF8.self)
            case ("ipxe_script", .string(let s)): ipxeScript = String(decoding: s, as: UTF8.self)
            case ("content", .string(let s)): content = s
            case ("content_type", .string(let s)): contentType = String(decoding: s, as: UTF8.self)
            case ("path", .string(let s)): path = String(decoding: s, as: UTF8.self)
            case ("refuse", .string(let s)): refuse = String(decoding: s, as: UTF8.self)
            case ("note", .string(let s)): note = String(decoding: s, as: UTF8.self)
            case ("status", .int(let i)): status = Int(i)
            case ("options", .table(let opts)):
                for (ok, ov) in opts {
                    if case .int(let c) = ok, let code = UInt8(exactly: c), case .string(let b) = ov {
                        options[code] = b
                    }
                }
            default: continue
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
        s("refuse", refuse); s("note", note); s("policy", policy)
        if let content { p.append((.string(Array("content".utf8)), .string(content))) }
        if let status { p.append((.string(Array("status".utf8)), .int(Int64(status)))) }
        if !options.isEmpty {
            p.append((.string(Array("options".utf8)),
                      .table(options.sorted { $0.key < $1.key }.map { (.int(Int64($0.key)), .string($0.value)) })))
        }
        return .table(p)
    }
}
