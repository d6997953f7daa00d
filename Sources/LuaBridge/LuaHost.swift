import CLuaShim
import Clients
import Foundation
import Logging
import Protocols

/// What Lua code reaches in Swift (log, state, and for test files the test API). Called from
/// the C trampoline on the thread that holds the Lua state; never touches the lua_State and
/// never throws across C: failures come back as `.failure(message)` and C raises them.
class LuaHost {
    enum Op: Int32 {
        case log = 1, stateGet = 2, stateSet = 3, stateClear = 4, scriptToken = 5
        case testChain = 10, testRun = 11, testFixture = 12, testResult = 13, testRequest = 14
        case testReply = 15, testState = 16, testAdvance = 17
    }

    let logger: Logger
    let store: ClientStateStore
    let tokens: ScriptTokens
    /// While loading the second and later states of a pool, the policy's top-level log lines
    /// would repeat once per state; they are dropped.
    var quiet = false

    init(logger: Logger, store: ClientStateStore, tokens: ScriptTokens) {
        self.logger = logger
        self.store = store
        self.tokens = tokens
    }

    func call(_ op: Op, _ args: LuaWire.Value) -> Result<LuaWire.Value?, HostError> {
        switch op {
        case .log:
            if quiet { return .success(nil) }
            let level: Logger.Level
            switch args[1] {
            case .int(0): level = .debug
            case .int(2): level = .warning
            case .int(3): level = .error
            default: level = .info
            }
            let policy = args[2]?.text ?? "?"
            var at = args[0]?.text ?? ""
            if at.hasSuffix(": ") { at.removeLast(2) }
            logger.log(
                level: level, "\(args[3]?.text ?? "")",
                metadata: ["policy": "\(policy)", "at": "\(at)"])
            return .success(nil)
        case .stateGet:
            guard let mac = args[1]?.text else { return .success(nil) }
            return .success(Self.stateGet(store, mac: mac))
        case .stateSet:
            guard let mac = args[1]?.text else { return .failure(HostError("state.set: expected (mac, table, ttl?)")) }
            return Self.stateSet(store, mac: mac, values: args[2], ttl: args[3], caller: "state.set")
        case .stateClear:
            if let mac = args[1]?.text {
                do {
                    try store.clear(mac: mac)
                } catch {
                    return .failure(HostError("state.clear: \(error.description)"))
                }
            }
            return .success(nil)
        case .scriptToken:
            guard let mac = args[1]?.text, let token = tokens.token(for: mac) else {
                return .failure(HostError("ipxe.script_token: expected a MAC address"))
            }
            return .success(.string(Array(token.utf8)))
        default:
            return .failure(HostError("operation not available here"))
        }
    }

    /// A client's state as a Lua table, or nil (`state.get`, and `chain:state` in tests).
    static func stateGet(_ store: ClientStateStore, mac: String) -> LuaWire.Value? {
        guard let values = store.get(mac: mac) else { return nil }
        return .table(values.sorted { $0.key < $1.key }.map { (.string(Array($0.key.utf8)), $0.value.wire) })
    }

    /// `state.set(mac, table, ttl?)` (and `chain:set_state` in tests): flat values only.
    static func stateSet(_ store: ClientStateStore, mac: String, values table: LuaWire.Value?, ttl: LuaWire.Value?,
                         caller: String) -> Result<LuaWire.Value?, HostError> {
        guard case .table(let pairs)? = table else { return .failure(HostError("\(caller): expected (mac, table, ttl?)")) }
        var values: [String: StateValue] = [:]
        for (k, v) in pairs {
            guard let key = k.text else { return .failure(HostError("\(caller): keys must be strings")) }
            guard let value = StateValue(wire: v) else {
                return .failure(HostError("\(caller): value of '\(key)' must be a string, number or boolean, got \(v.typeName)"))
            }
            values[key] = value
        }
        var seconds: TimeInterval?
        switch ttl {
        case .int(let i)?: seconds = TimeInterval(i)
        case .double(let d)?: seconds = d
        default: seconds = nil
        }
        do {
            try store.set(mac: mac, values, ttl: seconds)
        } catch {
            return .failure(HostError("\(caller): \(error.description)"))
        }
        return .success(nil)
    }

    struct HostError: Error {
        var message: String
        init(_ m: String) { message = m }
    }

    static let installed: Void = {
        bp_set_host_fn { host, op, input, inlen, out, outlen in
            guard let host, let out, let outlen else { return 1 }
            let me = Unmanaged<LuaHost>.fromOpaque(host).takeUnretainedValue()
            func give(_ bytes: [UInt8]) {
                let p = malloc(max(1, bytes.count))!.assumingMemoryBound(to: UInt8.self)
                bytes.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: bytes.count) }
                out.pointee = p
                outlen.pointee = bytes.count
            }
            guard let kind = Op(rawValue: op),
                let args = try? LuaWire.decode(UnsafeRawBufferPointer(start: input, count: inlen))
            else {
                give(Array("bad host call".utf8))
                return 1
            }
            switch me.call(kind, args) {
            case .success(nil):
                out.pointee = nil
                outlen.pointee = 0
                return 0
            case .success(let v?):
                var w = LuaWire.Writer(capacity: 64)
                w.value(v)
                give(w.bytes)
                return 0
            case .failure(let e):
                give(Array(e.message.utf8))
                return 1
            }
        }
    }()
}
