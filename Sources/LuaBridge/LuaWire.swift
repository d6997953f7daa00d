/// The byte encoding values use to cross between Swift and the C shim (documented in
/// CLuaShim.h). Native byte order: both sides run in the same process.
enum LuaWire {
    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int64)
        case double(Double)
        case string([UInt8])
        case table([(Value, Value)])

        var text: String? {
            if case .string(let b) = self { return String(decoding: b, as: UTF8.self) }
            return nil
        }

        /// Looks up a string key (tables are small; linear is fine).
        subscript(key: String) -> Value? {
            guard case .table(let pairs) = self else { return nil }
            let k = Array(key.utf8)
            for (pk, pv) in pairs { if case .string(let s) = pk, s == k { return pv } }
            return nil
        }

        subscript(index: Int64) -> Value? {
            guard case .table(let pairs) = self else { return nil }
            for (pk, pv) in pairs { if case .int(let i) = pk, i == index { return pv } }
            return nil
        }

        var typeName: String {
            switch self {
            case .none: return "nil"
            case .bool: return "boolean"
            case .int, .double: return "number"
            case .string: return "string"
            case .table: return "table"
            }
        }
    }

    struct Writer {
        var bytes: [UInt8] = []

        init(capacity: Int = 512) { bytes.reserveCapacity(capacity) }

        mutating func reset() { bytes.removeAll(keepingCapacity: true) }

        mutating func u32(_ v: UInt32) {
            withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
        }
        mutating func none() { bytes.append(UInt8(ascii: "n")) }
        mutating func bool(_ v: Bool) { bytes.append(UInt8(ascii: "b")); bytes.append(v ? 1 : 0) }
        mutating func int(_ v: Int64) {
            bytes.append(UInt8(ascii: "i"))
            withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
        }
        mutating func double(_ v: Double) {
            bytes.append(UInt8(ascii: "d"))
            withUnsafeBytes(of: v) { bytes.append(contentsOf: $0) }
        }
        mutating func string(_ s: String) {
            bytes.append(UInt8(ascii: "s"))
            var s = s
            s.withUTF8 { buf in
                u32(UInt32(buf.count))
                bytes.append(contentsOf: buf)
            }
        }
        mutating func string<C: Collection>(bytes b: C) where C.Element == UInt8 {
            bytes.append(UInt8(ascii: "s"))
            u32(UInt32(b.count))
            bytes.append(contentsOf: b)
        }
        /// Starts a table; pass the returned mark and the pair count to `endTable`.
        mutating func beginTable() -> Int {
            bytes.append(UInt8(ascii: "t"))
            let mark = bytes.count
            u32(0)
            return mark
        }
        mutating func endTable(_ mark: Int, count: Int) {
            withUnsafeBytes(of: UInt32(count)) { raw in
                for i in 0..<4 { bytes[mark + i] = raw[i] }
            }
        }
        mutating func value(_ v: Value) {
            switch v {
            case .none: none()
            case .bool(let b): bool(b)
            case .int(let i): int(i)
            case .double(let d): double(d)
            case .string(let s): string(bytes: s)
            case .table(let pairs):
                let m = beginTable()
                for (k, v) in pairs { value(k); value(v) }
                endTable(m, count: pairs.count)
            }
        }
    }

    struct DecodeError: Error {}

    static func decode(_ p: UnsafeRawBufferPointer) throws -> Value {
        var i = 0
        return try decode(p, &i, depth: 0)
    }

    private static func decode(_ p: UnsafeRawBufferPointer, _ i: inout Int, depth: Int) throws -> Value {
        guard depth < 40, i < p.count else { throw DecodeError() }
        let tag = p[i]
        i += 1
        func need(_ n: Int) throws { if p.count - i < n { throw DecodeError() } }
        switch tag {
        case UInt8(ascii: "n"): return .none
        case UInt8(ascii: "b"): try need(1); defer { i += 1 }; return .bool(p[i] != 0)
        case UInt8(ascii: "i"):
            try need(8); defer { i += 8 }
            return .int(p.loadUnaligned(fromByteOffset: i, as: Int64.self))
        case UInt8(ascii: "d"):
            try need(8); defer { i += 8 }
            return .double(p.loadUnaligned(fromByteOffset: i, as: Double.self))
        case UInt8(ascii: "s"):
            try need(4)
            let n = Int(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
            try need(n)
            defer { i += n }
            return .string(Array(p[i..<(i + n)]))
        case UInt8(ascii: "t"):
            try need(4)
            let n = Int(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
            var pairs: [(Value, Value)] = []
            pairs.reserveCapacity(min(n, 256))
            for _ in 0..<n {
                let k = try decode(p, &i, depth: depth + 1)
                let v = try decode(p, &i, depth: depth + 1)
                pairs.append((k, v))
            }
            return .table(pairs)
        default: throw DecodeError()
        }
    }
}
