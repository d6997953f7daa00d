import Clients
import Foundation

/// A request body of the control API's state endpoints, read into state values with an error
/// a person can act on: which key, what was wrong. PUT takes an object of strings, numbers and
/// booleans; PATCH also takes `null`, which removes that key (JSON merge patch, RFC 7396).
enum StateBody {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// How an error names a JSON value's type. The body is read as a `YAMLValue` (JSON is
    /// YAML), so a nested object or an array is named as such instead of failing the decode.
    private static func typeName(_ value: YAMLValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .number: return "a number"
        case .string: return "a string"
        case .list: return "an array"
        case .table: return "an object"
        }
    }

    /// The object's values; a key mapped to nil is a removal (PATCH only).
    static func parse(_ body: [UInt8], allowingNull: Bool) throws -> [String: StateValue?] {
        guard !body.isEmpty else { throw Invalid(description: "the body is empty; send a JSON object such as {\"installed\": true}") }
        let value: YAMLValue
        do {
            value = try JSONDecoder().decode(YAMLValue.self, from: Data(body))
        } catch {
            throw Invalid(description: "the body is not JSON: \(Self.reason(error))")
        }
        guard case .table(let object) = value else {
            throw Invalid(description: "the body must be a JSON object of keys to values, not \(typeName(value))")
        }
        var out: [String: StateValue?] = [:]
        for (key, v) in object {
            guard !key.isEmpty else { throw Invalid(description: "a key is empty") }
            switch v {
            case .string(let s): out[key] = .string(s)
            case .integer(let i): out[key] = .integer(i)
            case .number(let d): out[key] = .number(d)
            case .bool(let b): out[key] = .bool(b)
            case .null where allowingNull: out[key] = .some(nil)
            case .null:
                throw Invalid(description: "value of '\(key)' is null; PUT takes strings, numbers and booleans (PATCH with null removes a key)")
            case .list, .table:
                throw Invalid(description: "value of '\(key)' is \(typeName(v)); state values are strings, numbers and booleans")
            }
        }
        return out
    }

    private static func reason(_ error: Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .dataCorrupted(let ctx):
            return (ctx.underlyingError.map { "\(($0 as NSError).userInfo[NSDebugDescriptionErrorKey] ?? $0)" }) ?? ctx.debugDescription
        default: return "\(e)"
        }
    }
}
