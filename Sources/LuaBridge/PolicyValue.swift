import Clients

/// A configuration value for one policy, as the host parsed it from the bootpolicy config
/// file. Policies see it as the `config` global (tables, arrays, strings, numbers, booleans).
public enum PolicyValue: Sendable, Equatable {
    case string(String)
    case integer(Int)
    case number(Double)
    case bool(Bool)
    case list([PolicyValue])
    case table([String: PolicyValue])
}

extension PolicyValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: PolicyValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, PolicyValue)...) {
        self = .table(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension StateValue {
    var wire: LuaWire.Value {
        switch self {
        case .string(let s): return .string(Array(s.utf8))
        case .integer(let i): return .int(Int64(i))
        case .number(let d): return .double(d)
        case .bool(let b): return .bool(b)
        }
    }

    /// Flat values only (what `state.set` accepts).
    init?(wire v: LuaWire.Value) {
        switch v {
        case .string(let b): self = .string(String(decoding: b, as: UTF8.self))
        case .int(let i): self = .integer(Int(i))
        case .double(let d): self = .number(d)
        case .bool(let b): self = .bool(b)
        default: return nil
        }
    }
}
