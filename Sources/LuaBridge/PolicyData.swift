import Foundation
import Protocols
import Yams

/// One data file the configuration names (`data: { machines: machines.yaml }`): read at load,
/// checked whole, and seen read-only by every policy as `data.<name>`.
public struct DataSource: Sendable, Equatable {
    public enum KeyFormat: String, Sendable, Equatable, CaseIterable {
        /// The key field's text as written.
        case verbatim
        /// A MAC address, written back as `aa:bb:cc:dd:ee:ff` (how `req.mac` reads), so any
        /// spelling in the file finds the machine.
        case mac
    }

    public var name: String
    public var path: String
    /// For a file that is a list of tables (every CSV, a YAML/JSON list): also index the rows
    /// by this field, `data.<name>[value]` beside `data.<name>[1..n]`.
    public var key: String?
    public var keyFormat: KeyFormat

    public init(name: String, path: String, key: String? = nil, keyFormat: KeyFormat = .verbatim) {
        self.name = name
        self.path = path
        self.key = key
        self.keyFormat = keyFormat
    }

    /// A source as the configuration (or a test's `policy_chain`) spells it: `keyFormat` by
    /// name, and only with `key`. The error says what is wrong, without a location.
    public static func parse(name: String, path: String, key: String?, keyFormat: String?) throws(DataError) -> DataSource {
        var format = KeyFormat.verbatim
        if let f = keyFormat {
            guard let parsed = KeyFormat(rawValue: f) else {
                throw DataError(path: path, message: "key_format \(f) is not one of \(KeyFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard key != nil else { throw DataError(path: path, message: "key_format needs key (the field to index rows by)") }
            format = parsed
        }
        return DataSource(name: name, path: path, key: key, keyFormat: format)
    }

    enum Format: String { case yaml, json, csv }

    var format: Format? {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "yaml", "yml": return .yaml
        case "json": return .json
        case "csv": return .csv
        default: return nil
        }
    }
}

/// A data file that could not be used; `description` reads `machines.yaml:12:5: message`.
public struct DataError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(path: String, line: Int? = nil, column: Int? = nil, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var s = path
        if let line { s += ":\(line)" }
        if line != nil, let column { s += ":\(column)" }
        return s + ": " + message
    }
}

/// Every data file of a configuration, parsed and encoded once; each Lua state of a chain
/// builds its read-only tables from the same bytes.
public struct PolicyData: Sendable {
    public static let empty = PolicyData(sources: [], entries: [:], wire: [], keys: [])

    public let sources: [DataSource]
    /// Top-level entries per name (rows of a list, keys of a table), for logs and the status.
    public let entries: [String: Int]
    /// Wire table name -> value (empty when there is no data).
    let wire: [UInt8]
    /// Wire table name -> key field, for the names indexed by a field.
    let keys: [UInt8]

    init(sources: [DataSource], entries: [String: Int], wire: [UInt8], keys: [UInt8]) {
        self.sources = sources
        self.entries = entries
        self.wire = wire
        self.keys = keys
    }

    /// Reads, parses and checks every source; the first problem is thrown with its position.
    public static func load(_ sources: [DataSource]) throws(DataError) -> PolicyData {
        if sources.isEmpty { return .empty }
        var w = LuaWire.Writer(capacity: 4096)
        var k = LuaWire.Writer(capacity: 64)
        var entries: [String: Int] = [:]
        let top = w.beginTable()
        let keyTop = k.beginTable()
        var keyed = 0
        var seen = Set<String>()
        for source in sources {
            guard DataNames.valid(source.name) else {
                throw DataError(path: source.path, message: "data name '\(source.name)' must be a Lua identifier (letters, digits, _)")
            }
            guard seen.insert(source.name).inserted else {
                throw DataError(path: source.path, message: "data name '\(source.name)' is given twice")
            }
            w.string(source.name)
            switch try parse(source) {
            case .encoded(let bytes, let n):
                entries[source.name] = n
                w.bytes.append(contentsOf: bytes)
            case .value(let value):
                switch value {
                case .list(let l): entries[source.name] = l.count
                case .table(let t): entries[source.name] = t.count
                default: entries[source.name] = 1
                }
                w.policyValue(value)
            }
            if let key = source.key {
                k.string(source.name)
                k.string(key)
                keyed += 1
            }
        }
        w.endTable(top, count: sources.count)
        k.endTable(keyTop, count: keyed)
        return PolicyData(sources: sources, entries: entries, wire: w.bytes, keys: keyed > 0 ? k.bytes : [])
    }

    /// A parsed file: values, or (CSV, the format of large inventories) already encoded.
    enum Parsed {
        case value(PolicyValue)
        case encoded([UInt8], entries: Int)
    }

    static func parse(_ source: DataSource) throws(DataError) -> Parsed {
        guard let format = source.format else {
            throw DataError(path: source.path, message: "unknown data format (name the file .yaml, .yml, .json or .csv)")
        }
        let bytes: Data
        do {
            bytes = try Data(contentsOf: URL(fileURLWithPath: source.path))
        } catch {
            throw DataError(path: source.path, message: "cannot read: \((error as NSError).localizedFailureReason ?? error.localizedDescription)")
        }
        guard let text = String(data: bytes, encoding: .utf8) else {
            throw DataError(path: source.path, message: "not UTF-8 text")
        }
        var body = Substring(text)
        if body.hasPrefix("\u{FEFF}") { body = body.dropFirst() }
        let value: PolicyValue
        switch format {
        case .csv:
            let (bytes, n) = try CSVData.encode(body, source: source)
            return .encoded(bytes, entries: n)
        case .yaml: value = try YAMLData.parse(String(body), source: source)
        case .json:
            // YAML reads JSON, with positions, but forgives what JSON does not (`"b": }` is
            // a null there): JSON's own parser says first whether the file is JSON.
            try JSONCheck.validate(Data(body.utf8), source: source)
            value = try YAMLData.parse(String(body), source: source)
        }
        if source.key != nil, case .list = value {} else if source.key != nil {
            throw DataError(path: source.path, message: "key: \(source.key!) needs a list of tables at the top of the file")
        }
        return .value(value)
    }
}

enum DataNames {
    static func valid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}

/// Checks the key field of each row of a keyed source: present, a string (or a number, kept
/// as its text), in the key format, not seen before.
struct KeyIndex {
    let source: DataSource
    var firstLine: [String: Int] = [:]

    init(_ source: DataSource) { self.source = source }

    mutating func check(_ row: inout [String: PolicyValue], line: Int, column: Int? = nil) throws(DataError) {
        guard let field = source.key else { return }
        let text: String
        switch row[field] {
        case .string(let s)?: text = s
        case .integer(let i)?: text = String(i)
        case nil: throw DataError(path: source.path, line: line, column: column, message: "row has no '\(field)' (the key field)")
        default: throw DataError(path: source.path, line: line, column: column, message: "key field '\(field)' must be text")
        }
        row[field] = .string(try check(text: text, line: line, column: column))
    }

    /// The key as it is kept (normalized), after checking it.
    mutating func check(text key: String, line: Int, column: Int? = nil) throws(DataError) -> String {
        let field = source.key ?? ""
        var text = key
        if source.keyFormat == .mac {
            guard let m = MACAddress.normalize(text) else {
                throw DataError(path: source.path, line: line, column: column, message: "'\(field)' is not a MAC address: \(text)")
            }
            text = m
        }
        if let first = firstLine[text] {
            throw DataError(path: source.path, line: line, column: column, message: "duplicate key \(text) (first at line \(first))")
        }
        firstLine[text] = line
        return text
    }
}

/// RFC 4180 CSV: a header row names the columns; every other row becomes a table of its
/// non-empty cells (an empty cell is absent, nil in Lua). Cells are text. Encoded straight
/// into the wire format as it is read: a 100,000-row inventory never exists as Swift values.
enum CSVData {
    static func encode(_ text: Substring, source: DataSource) throws(DataError) -> ([UInt8], Int) {
        let bytes = Array(text.utf8)
        let result = bytes.withUnsafeBufferPointer { buf in Result { () throws(DataError) in try encode(buf, source: source) } }
        return try result.get()
    }

    static func encode(_ u: UnsafeBufferPointer<UInt8>, source: DataSource) throws(DataError) -> ([UInt8], Int) {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), lf = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var i = 0
        var line = 1
        var header: [String]?
        var names: [[UInt8]] = []  // each column name's wire encoding
        var keyColumn: Int?
        var w = LuaWire.Writer(capacity: u.count + u.count / 2)
        let top = w.beginTable()
        var rows = 0
        var index = KeyIndex(source)
        var cells: [Range<Int>] = []
        var unquoted: [Int: [UInt8]] = [:]  // cells with "" escapes or line breaks, unescaped
        func fail(_ msg: String, _ l: Int, _ c: Int? = nil) -> DataError {
            DataError(path: source.path, line: l, column: c, message: msg)
        }
        while i < u.count {
            let rowLine = line
            var lineStart = i
            cells.removeAll(keepingCapacity: true)
            unquoted.removeAll(keepingCapacity: true)
            // One record: cells up to an unquoted line end.
            record: while true {
                if i < u.count, u[i] == quote {
                    let openLine = line, openCol = i - lineStart + 1
                    i += 1
                    let start = i
                    var escaped: [UInt8]?
                    while true {
                        guard i < u.count else { throw fail("unterminated quoted cell (opened here)", openLine, openCol) }
                        let b = u[i]
                        if b == quote {
                            if i + 1 < u.count, u[i + 1] == quote {
                                if escaped == nil { escaped = Array(u[start..<i]) }
                                escaped!.append(quote)
                                i += 2
                                continue
                            }
                            break
                        }
                        if b == lf { line += 1; lineStart = i + 1 }
                        escaped?.append(b)
                        i += 1
                    }
                    if let escaped { unquoted[cells.count] = escaped }
                    cells.append(start..<i)
                    i += 1
                    if i < u.count, u[i] != comma, u[i] != lf, u[i] != cr {
                        throw fail("text after a closing quote (write \"\" for a quote inside a quoted cell)", line, i - lineStart + 1)
                    }
                } else {
                    let start = i
                    while i < u.count, u[i] != comma, u[i] != lf, u[i] != cr {
                        if u[i] == quote {
                            throw fail("a quote inside an unquoted cell (quote the whole cell and double the quote)", line, i - lineStart + 1)
                        }
                        i += 1
                    }
                    cells.append(start..<i)
                }
                if i >= u.count { break record }
                switch u[i] {
                case comma: i += 1
                case cr:
                    i += 1
                    if i < u.count, u[i] == lf { i += 1 }
                    line += 1
                    break record
                default:
                    i += 1
                    line += 1
                    break record
                }
            }
            func cell(_ n: Int) -> UnsafeBufferPointer<UInt8>.SubSequence { u[cells[n]] }
            if cells.count == 1 && cells[0].isEmpty { continue }  // blank line
            guard header != nil else {
                var seen = Set<String>()
                var list: [String] = []
                for n in cells.indices {
                    let name = String(decoding: unquoted[n] ?? Array(cell(n)), as: UTF8.self).trimmingCharacters(in: .whitespaces)
                    if name.isEmpty { throw fail("column \(n + 1) of the header row has no name", rowLine) }
                    if !seen.insert(name).inserted { throw fail("column name '\(name)' appears twice in the header row", rowLine) }
                    list.append(name)
                    var enc = LuaWire.Writer(capacity: name.utf8.count + 5)
                    enc.string(name)
                    names.append(enc.bytes)
                }
                header = list
                if let key = source.key {
                    guard let k = list.firstIndex(of: key) else {
                        throw fail("key column '\(key)' is not in the header row (\(list.joined(separator: ", ")))", rowLine)
                    }
                    keyColumn = k
                }
                continue
            }
            guard cells.count == names.count else {
                throw fail("row has \(cells.count) cells, the header has \(names.count)", rowLine)
            }
            rows += 1
            w.int(Int64(rows))
            let mark = w.beginTable()
            var fields = 0
            for n in cells.indices {
                if let k = keyColumn, k == n {
                    let raw = String(decoding: unquoted[n] ?? Array(cell(n)), as: UTF8.self)
                    if raw.isEmpty { throw fail("row has no '\(source.key!)' (the key field)", rowLine) }
                    let key = try index.check(text: raw, line: rowLine)
                    w.bytes.append(contentsOf: names[n])
                    w.string(key)
                    fields += 1
                    continue
                }
                if let esc = unquoted[n] {
                    if esc.isEmpty { continue }
                    w.bytes.append(contentsOf: names[n])
                    w.string(bytes: esc)
                } else {
                    if cells[n].isEmpty { continue }
                    w.bytes.append(contentsOf: names[n])
                    w.string(bytes: cell(n))
                }
                fields += 1
            }
            w.endTable(mark, count: fields)
        }
        if header == nil { throw fail("empty file: a CSV data file needs a header row", 1) }
        w.endTable(top, count: rows)
        return (w.bytes, rows)
    }
}

enum JSONCheck {
    static func validate(_ bytes: Data, source: DataSource) throws(DataError) {
        do {
            _ = try JSONSerialization.jsonObject(with: bytes, options: [])
        } catch {
            let detail = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? "not valid JSON"
            // Foundation names a byte offset ("around character 15"), or nothing at the end.
            var offset = bytes.count
            if let r = detail.range(of: "character "), let n = Int(detail[r.upperBound...].prefix(while: \.isNumber)) { offset = min(n, bytes.count) }
            var line = 1, col = 1
            for b in bytes.prefix(offset) {
                if b == UInt8(ascii: "\n") { line += 1; col = 1 } else if b & 0xC0 != 0x80 { col += 1 }
            }
            let message = detail.replacingOccurrences(of: #" around character \d+\.?"#, with: "", options: .regularExpression)
            throw DataError(path: source.path, line: line, column: col, message: "not valid JSON: " + message)
        }
    }
}

/// YAML (and JSON, which YAML reads as well: the positions libyaml gives apply to both)
/// composed into nodes, so every error has a line and column. Keys are text; a null value
/// leaves its key out (as nil would in Lua); a null in a list is refused (a Lua list cannot
/// hold nil).
enum YAMLData {
    static func parse(_ text: String, source: DataSource) throws(DataError) -> PolicyValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            throw describe(e, source.path)
        } catch {
            throw DataError(path: source.path, message: "\(error)")
        }
        guard let node else { throw DataError(path: source.path, line: 1, column: 1, message: "empty file: a data file needs a document") }
        var budget = maxValues
        guard source.key != nil else { return try convert(node, source: source, depth: 0, budget: &budget) }
        // A keyed file: a list whose every item is a table with the key field.
        guard case .sequence(let seq) = node else {
            throw DataError(path: source.path, line: node.mark?.line, column: node.mark?.column,
                            message: "key: \(source.key!) needs a list of tables at the top of the file")
        }
        var index = KeyIndex(source)
        var rows: [PolicyValue] = []
        rows.reserveCapacity(seq.count)
        for item in seq {
            let (l, c) = position(item)
            guard case .table(var row) = try convert(item, source: source, depth: 1, budget: &budget) else {
                throw DataError(path: source.path, line: l, column: c, message: "key: \(source.key!) needs every item of the list to be a table")
            }
            try index.check(&row, line: l ?? 0, column: c)
            rows.append(.table(row))
        }
        return .list(rows)
    }

    private static func position(_ node: Node) -> (Int?, Int?) { (node.mark?.line, node.mark?.column) }

    /// Values a data file may hold in all: aliases repeat a node without its text, so a small
    /// file could otherwise expand without bound.
    static let maxValues = 20_000_000

    private static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    /// A plain scalar by YAML 1.2's core schema, not libyaml's 1.1 rules: under those,
    /// 52:54:00:00:00:02 (a MAC) is a base-60 integer and `no` (a country code) is false.
    static func resolvePlain(_ text: String) -> PolicyValue {
        switch text {
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .number(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .number(-.infinity)
        case ".nan", ".NaN", ".NAN": return .number(.nan)
        default: break
        }
        let u = Array(text.utf8)
        guard let first = u.first else { return .string(text) }
        func digits(_ s: ArraySlice<UInt8>, _ ok: (UInt8) -> Bool) -> Bool { !s.isEmpty && s.allSatisfy(ok) }
        let dec: (UInt8) -> Bool = { $0 >= 48 && $0 <= 57 }
        if u.count > 2, u[0] == 48, u[1] == UInt8(ascii: "x") {
            if digits(u[2...], { dec($0) || (65...70).contains($0) || (97...102).contains($0) }), let i = Int(String(text.dropFirst(2)), radix: 16) { return .integer(i) }
            return .string(text)
        }
        if u.count > 2, u[0] == 48, u[1] == UInt8(ascii: "o") {
            if digits(u[2...], { $0 >= 48 && $0 <= 55 }), let i = Int(String(text.dropFirst(2)), radix: 8) { return .integer(i) }
            return .string(text)
        }
        let signed = first == UInt8(ascii: "-") || first == UInt8(ascii: "+")
        let body = signed ? u[1...] : u[0...]
        if digits(body, dec) {
            if let i = Int(signed && first == UInt8(ascii: "+") ? String(text.dropFirst()) : text) { return .integer(i) }
            if let d = Double(text) { return .number(d) }
        }
        // [-+]? ( . digits | digits ( . digits* )? ) ( [eE] [-+]? digits )?
        var i = body.startIndex
        var mantissa = 0
        while i < body.endIndex, dec(body[i]) { i += 1; mantissa += 1 }
        if i < body.endIndex, body[i] == UInt8(ascii: ".") {
            i += 1
            while i < body.endIndex, dec(body[i]) { i += 1; mantissa += 1 }
        }
        if mantissa > 0, i < body.endIndex, body[i] == UInt8(ascii: "e") || body[i] == UInt8(ascii: "E") {
            i += 1
            if i < body.endIndex, body[i] == UInt8(ascii: "-") || body[i] == UInt8(ascii: "+") { i += 1 }
            let start = i
            while i < body.endIndex, dec(body[i]) { i += 1 }
            if i == start { return .string(text) }
        }
        if mantissa > 0, i == body.endIndex, let d = Double(text) { return .number(d) }
        return .string(text)
    }

    private static func tooBig(_ source: DataSource, _ line: Int?, _ col: Int?) -> DataError {
        DataError(path: source.path, line: line, column: col, message: "more than \(maxValues) values (aliases expanding?)")
    }

    private static func convert(_ node: Node, source: DataSource, depth: Int, budget: inout Int) throws(DataError) -> PolicyValue {
        let (line, col) = position(node)
        guard depth < 30 else { throw DataError(path: source.path, line: line, column: col, message: "nested more than 30 levels deep") }
        switch node {
        case .scalar(let scalar):
            budget -= 1
            if budget < 0 { throw tooBig(source, line, col) }
            // Quoted text is text ("0012" stays "0012"); a plain scalar is resolved.
            if scalar.style != .plain && scalar.style != .any { return .string(scalar.string) }
            return resolvePlain(scalar.string)
        case .sequence(let seq):
            var out: [PolicyValue] = []
            out.reserveCapacity(seq.count)
            for item in seq {
                let (l, c) = position(item)
                if isNull(item) {
                    throw DataError(path: source.path, line: l, column: c, message: "null in a list (a Lua list cannot hold nil; leave the item out)")
                }
                out.append(try convert(item, source: source, depth: depth + 1, budget: &budget))
            }
            return .list(out)
        case .mapping(let map):
            budget -= map.count
            if budget < 0 { throw tooBig(source, line, col) }
            var out: [String: PolicyValue] = [:]
            out.reserveCapacity(map.count)
            var keyLine: [String: Int] = [:]
            for (k, v) in map {
                let (kl, kc) = position(k)
                guard case .scalar = k, let name = k.string else {
                    throw DataError(path: source.path, line: kl, column: kc, message: "a key must be text or a number, not a list or table")
                }
                if name == "<<", case .scalar(let ks) = k, ks.style == .plain {
                    throw DataError(path: source.path, line: kl, column: kc, message: "YAML merge keys (<<) are not supported in data files")
                }
                if let first = keyLine[name] {
                    throw DataError(path: source.path, line: kl, column: kc, message: "duplicate key '\(name)' (first at line \(first))")
                }
                keyLine[name] = kl ?? 0
                if isNull(v) { continue }
                out[name] = try convert(v, source: source, depth: depth + 1, budget: &budget)
            }
            return .table(out)
        }
    }

    private static func describe(_ e: YamlError, _ path: String) -> DataError {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let ctx = context.map { "\($0.text) " } ?? ""
            return DataError(path: path, line: mark.line, column: mark.column, message: ctx + problem)
        case .reader(let problem, _, _, _):
            return DataError(path: path, message: problem)
        default:
            return DataError(path: path, message: "\(e)")
        }
    }
}

extension LuaWire.Writer {
    /// Encodes a value directly (no intermediate `LuaWire.Value`): data files can be large.
    mutating func policyValue(_ v: PolicyValue) {
        switch v {
        case .string(let s): string(s)
        case .integer(let i): int(Int64(i))
        case .number(let d): double(d)
        case .bool(let b): bool(b)
        case .list(let l):
            let m = beginTable()
            for (n, item) in l.enumerated() {
                int(Int64(n + 1))
                policyValue(item)
            }
            endTable(m, count: l.count)
        case .table(let t):
            let m = beginTable()
            for (k, item) in t {
                string(k)
                policyValue(item)
            }
            endTable(m, count: t.count)
        }
    }
}
