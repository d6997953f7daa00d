import Protocols

extension BootRequest {
    /// Writes the request table (snake_case fields, options excluded: they are decoded only
    /// when a hook reads `req.options`). With `omittingEmpty`, the empty `user_class`,
    /// `ipxe_features`, `query` and `headers` tables are left out too: the request table made in C then
    /// makes each on first read (three tables per decision that most hooks never look at).
    func encodeLua(into w: inout LuaWire.Writer, omittingEmpty: Bool = false) {
        let mark = w.beginTable()
        var n = 0
        @inline(__always) func key(_ k: StaticString) {
            w.bytes.append(UInt8(ascii: "s"))
            w.u32(UInt32(k.utf8CodeUnitCount))
            w.bytes.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
            n += 1
        }
        key("kind"); w.string(kind.rawValue)
        key("mac"); w.string(mac)
        key("firmware"); w.string(firmware.rawValue)
        key("ipxe"); w.bool(isIPXE)
        if let xid { key("xid"); w.int(Int64(xid)) }
        if let messageType { key("message_type"); w.string(messageType) }
        if let arch { key("arch"); w.string(arch) }
        if let archCode { key("arch_code"); w.int(Int64(archCode)) }
        if let vendorClass { key("vendor_class"); w.string(vendorClass) }
        if !(omittingEmpty && userClass.isEmpty) {
            key("user_class")
            let uc = w.beginTable()
            for (i, c) in userClass.enumerated() { w.int(Int64(i + 1)); w.string(c) }
            w.endTable(uc, count: userClass.count)
        }
        if !(omittingEmpty && ipxeFeatures.isEmpty) {
            key("ipxe_features")
            let f = w.beginTable()
            for (k, v) in ipxeFeatures { w.string(k); w.int(Int64(v)) }
            w.endTable(f, count: ipxeFeatures.count)
        }
        if let uuid { key("uuid"); w.string(uuid) }
        if let hostname { key("hostname"); w.string(hostname) }
        if let relay {
            key("relay")
            let r = w.beginTable()
            var rn = 1
            w.string("giaddr"); w.string(relay.giaddr)
            if let c = relay.circuitID { w.string("circuit_id"); w.string(c); rn += 1 }
            if let c = relay.remoteID { w.string("remote_id"); w.string(c); rn += 1 }
            if let c = relay.circuitIDHex { w.string("circuit_id_hex"); w.string(c); rn += 1 }
            if let c = relay.remoteIDHex { w.string("remote_id_hex"); w.string(c); rn += 1 }
            w.endTable(r, count: rn)
        }
        if let interface { key("interface"); w.string(interface) }
        if let clientAddress { key("client_address"); w.string(clientAddress) }
        if let serverAddress { key("server_address"); w.string(serverAddress) }
        if let serverPort { key("server_port"); w.int(Int64(serverPort)) }
        // "ipv4" or "ipv6": DHCPv4 or DHCPv6, and for TFTP and HTTP the family of the address
        // the request came from (an IPv4-mapped one is IPv4).
        key("family"); w.string(effectiveFamily.rawValue)
        if let duid { key("duid"); w.string(duid) }
        if let path { key("path"); w.string(path) }
        if !(omittingEmpty && query.isEmpty) {
            key("query")
            let q = w.beginTable()
            for (k, v) in query { w.string(k); w.string(v) }
            w.endTable(q, count: query.count)
        }
        if let method { key("method"); w.string(method) }
        if let scheme { key("scheme"); w.string(scheme) }
        if !(omittingEmpty && headers.isEmpty) {
            key("headers")
            let h = w.beginTable()
            for (k, v) in headers { w.string(k); w.string(v) }
            w.endTable(h, count: headers.count)
        }
        if kind == .http || !body.isEmpty { key("body"); w.string(bytes: body) }
        w.endTable(mark, count: n)
    }

    func encodeLuaOptions(into w: inout LuaWire.Writer) {
        if family == .ipv6 {
            // A DHCPv6 request's own options, by their 16-bit codes (59, 61, 16, ...).
            let m = w.beginTable()
            for (code, bytes) in options6 { w.int(Int64(code)); w.string(bytes: bytes) }
            w.endTable(m, count: options6.count)
            return
        }
        let m = w.beginTable()
        for (code, bytes) in options { w.int(Int64(code)); w.string(bytes: bytes) }
        w.endTable(m, count: options.count)
    }

    /// `family` for a DHCP request; for TFTP and HTTP, that of the client's address.
    var effectiveFamily: Family {
        guard kind != .dhcp, let a = clientAddress else { return family }
        return a.contains(":") && !a.lowercased().hasPrefix("::ffff:") ? .ipv6 : .ipv4
    }

    /// The request as a plain Lua value including options (test runner).
    var luaValue: LuaWire.Value {
        var w = LuaWire.Writer()
        encodeLua(into: &w)
        guard case .table(var pairs) = (try? w.bytes.withUnsafeBytes { try LuaWire.decode($0) }) ?? .none
        else { return .table([]) }
        pairs.append((.string(Array("options".utf8)),
                      .table(options.sorted { $0.key < $1.key }.map { (.int(Int64($0.key)), .string($0.value)) })))
        return .table(pairs)
    }

    /// Builds a request from a Lua table (policy tests' `request{...}`); errors name the field.
    init(lua v: LuaWire.Value) throws(LuaHost.HostError) {
        guard case .table(let pairs) = v else { throw .init("request: expected a table") }
        self.init(kind: .dhcp)
        func str(_ k: String, _ v: LuaWire.Value) throws(LuaHost.HostError) -> String {
            guard let s = v.text else { throw .init("request.\(k): expected string, got \(v.typeName)") }
            return s
        }
        func int(_ k: String, _ v: LuaWire.Value) throws(LuaHost.HostError) -> Int64 {
            switch v {
            case .int(let i): return i
            case .double(let d) where d == d.rounded(): return Int64(d)
            default: throw .init("request.\(k): expected integer, got \(v.typeName)")
            }
        }
        func strings(_ k: String, _ v: LuaWire.Value) throws(LuaHost.HostError) -> [(LuaWire.Value, String)] {
            guard case .table(let p) = v else { throw .init("request.\(k): expected table, got \(v.typeName)") }
            var out: [(LuaWire.Value, String)] = []
            for (pk, pv) in p {
                guard let s = pv.text else { throw .init("request.\(k): values must be strings, got \(pv.typeName)") }
                out.append((pk, s))
            }
            return out
        }
        // Options are read by 16-bit code and sorted into DHCPv4's or DHCPv6's once `family`,
        // wherever it stands in the table, is known.
        var wide: [UInt16: [UInt8]] = [:]
        for (k, val) in pairs {
            guard let key = k.text else { throw .init("request: keys must be field names") }
            switch key {
            case "kind":
                let s = try str(key, val)
                guard let kd = Kind(rawValue: s) else { throw .init("request.kind: expected dhcp, tftp or http, got '\(s)'") }
                kind = kd
            case "mac":
                let s = try str(key, val)
                guard let m = MACAddress.normalize(s) else { throw .init("request.mac: not a MAC address: '\(s)'") }
                mac = m
            case "xid":
                let i = try int(key, val)
                guard let x = UInt32(exactly: i) else { throw .init("request.xid: out of range") }
                xid = x
            case "message_type": messageType = try str(key, val)
            case "arch": arch = try str(key, val)
            case "arch_code":
                let i = try int(key, val)
                guard let a = UInt16(exactly: i) else { throw .init("request.arch_code: out of range") }
                archCode = a
            case "firmware":
                let s = try str(key, val)
                guard let f = Firmware(rawValue: s) else {
                    throw .init("request.firmware: expected bios, uefi, ipxe, http-boot or unknown, got '\(s)'")
                }
                firmware = f
            case "vendor_class": vendorClass = try str(key, val)
            case "user_class":
                userClass = try strings(key, val).sorted { a, b in
                    if case .int(let x) = a.0, case .int(let y) = b.0 { return x < y }
                    return false
                }.map(\.1)
            case "ipxe":
                guard case .bool(let b) = val else { throw .init("request.ipxe: expected boolean, got \(val.typeName)") }
                isIPXE = b
            case "ipxe_features":
                guard case .table(let p) = val else { throw .init("request.ipxe_features: expected table, got \(val.typeName)") }
                var fs: [String: Int] = [:]
                for (fk, fv) in p {
                    guard let name = fk.text else { throw .init("request.ipxe_features: keys must be names") }
                    fs[name] = Int(try int("ipxe_features.\(name)", fv))
                }
                ipxeFeatures = fs
            case "uuid": uuid = try str(key, val)
            case "hostname": hostname = try str(key, val)
            case "relay":
                guard case .table = val else { throw .init("request.relay: expected table, got \(val.typeName)") }
                guard let g = val["giaddr"]?.text else { throw .init("request.relay.giaddr: expected string") }
                relay = Relay(giaddr: g, circuitID: val["circuit_id"]?.text, remoteID: val["remote_id"]?.text,
                              circuitIDHex: val["circuit_id_hex"]?.text, remoteIDHex: val["remote_id_hex"]?.text)
            case "interface": interface = try str(key, val)
            case "client_address": clientAddress = try str(key, val)
            case "server_address": serverAddress = try str(key, val)
            case "server_port": serverPort = Int(try int(key, val))
            case "family":
                let s = try str(key, val)
                guard let f = Family(rawValue: s) else { throw .init("request.family: expected ipv4 or ipv6, got '\(s)'") }
                family = f
            case "duid": duid = try str(key, val)
            case "path": path = try str(key, val)
            case "query":
                var q: [String: String] = [:]
                for (qk, qv) in try strings(key, val) {
                    guard let name = qk.text else { throw .init("request.query: keys must be strings") }
                    q[name] = qv
                }
                query = q
            case "method": method = try str(key, val)
            case "scheme": scheme = try str(key, val)
            case "headers":
                var h: [String: String] = [:]
                for (hk, hv) in try strings(key, val) {
                    guard let name = hk.text else { throw .init("request.headers: keys must be header names") }
                    h[name.lowercased()] = hv
                }
                headers = h
            case "body":
                guard case .string(let b) = val else { throw .init("request.body: expected string, got \(val.typeName)") }
                body = b
            case "options":
                guard case .table(let p) = val else { throw .init("request.options: expected table, got \(val.typeName)") }
                for (ok, ov) in p {
                    guard case .int(let c) = ok, let code = UInt16(exactly: c) else {
                        throw .init("request.options: keys must be option codes (0..255; 0..65535 with family = \"ipv6\")")
                    }
                    guard case .string(let b) = ov else { throw .init("request.options[\(c)]: expected string, got \(ov.typeName)") }
                    wide[code] = b
                }
            default:
                throw .init("request: unknown field '\(key)'")
            }
        }
        if family == .ipv6 {
            options6 = wide
        } else {
            var o: [UInt8: [UInt8]] = [:]
            for (code, bytes) in wide {
                guard let c = UInt8(exactly: code) else { throw .init("request.options: keys must be option codes 0..255 (\(code) is a DHCPv6 code: add family = \"ipv6\")") }
                o[c] = bytes
            }
            if !wide.isEmpty { options = o }
        }
    }
}
