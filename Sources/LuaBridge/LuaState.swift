import CLuaShim
import Foundation
import Protocols

/// One sandboxed lua_State holding every policy of a chain. Used by one thread at a time
/// (callers take `lock`).
final class LuaState {
    let L: OpaquePointer
    let lock = NSLock()
    let host: LuaHost
    /// Registry refs per policy: [dhcp, tftp, http] (LUA_NOREF when absent).
    var hooks: [[Int32]] = []
    var request = LuaWire.Writer(capacity: 512)
    var options = LuaWire.Writer(capacity: 512)
    /// The current request's options where the C side reads them in place while a decision
    /// runs (it keeps the pointer until bp_end_request): memory this state owns, so the
    /// pointer is valid for exactly that long. Grown when a request's options need more.
    private var pinned = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 8)

    init(host: LuaHost, limits: PolicyLimits) throws(PolicyLoadError) {
        _ = LuaHost.installed
        self.host = host
        var err: UnsafeMutablePointer<CChar>?
        let src = LuaPrelude.source
        let opened: OpaquePointer? = src.withCString { p in
            bp_open(Unmanaged.passUnretained(host).toOpaque(), limits.memoryBytes, p, strlen(p), &err)
        }
        guard let L = opened else {
            let msg = err.map { String(cString: $0) } ?? "cannot create Lua state"
            free(err)
            throw PolicyLoadError(file: "bootpolicy", message: msg)
        }
        self.L = L
        bp_set_budget(L, Int64(limits.instructionBudget), limits.cpuTime, limits.wallClock)
        // Best effort: a string that could not be anchored is only made again per request.
        for text in Self.commonValues {
            var text = text
            _ = text.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { bp_anchor(L, $0.baseAddress, $0.count) }
            }
        }
    }

    /// Values most requests carry, kept interned for the state's life (the shim does the same
    /// for the request's field names, and says why).
    static let commonValues: [String] =
        ["giaddr", "circuit_id", "remote_id"] + BootRequest.Kind.allCases.map(\.rawValue)
        + BootRequest.Firmware.allCases.map(\.rawValue) + DHCPMessageType.allCases.map(\.name)
        + ClientArchitecture.knownNames

    deinit {
        bp_close(L)
        pinned.deallocate()
    }

    /// `options` copied where it stays put until the next call (see `pinned`).
    func pinOptions() -> UnsafeRawBufferPointer {
        let count = options.bytes.count
        if count > pinned.count {
            pinned.deallocate()
            pinned = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 2 * pinned.count), alignment: 8)
        }
        options.bytes.withUnsafeBytes { pinned.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(rebasing: pinned[0..<count])
    }

    /// Bytes the state has allocated (live objects plus garbage not yet collected).
    var memoryUsed: Int { bp_memory_used(L) }

    /// Gives the policies loaded after it `data` and `server`; returns the bytes the state's
    /// copy of the data takes (outside the per-request memory cap, see bp_set_data).
    func setData(_ data: PolicyData, server: ServerFacts) throws(PolicyLoadError) -> Int {
        var cost = 0
        let facts = server.wire
        let rc = data.wire.withUnsafeBufferPointer { d in
            data.keys.withUnsafeBufferPointer { k in
                facts.withUnsafeBufferPointer { f in
                    bp_set_data(L, d.baseAddress, d.count, k.baseAddress, k.count, f.baseAddress, f.count, &cost)
                }
            }
        }
        if rc != 0 {
            defer { bp_settop(L, 0) }
            throw PolicyLoadError(file: "data", message: topString() ?? "cannot build the data tables")
        }
        return cost
    }

    /// Loads one policy (or test file) from source text; returns the policy's `name` field.
    func load(source: [UInt8], file: String, path: String, dir: String, policyName: String,
              config: [String: PolicyValue], test: Bool = false) throws(PolicyLoadError) -> String?
    {
        var cfg = LuaWire.Writer(capacity: 128)
        cfg.policyValue(.table(config))
        var refs: [Int32] = [0, 0, 0]
        var name: UnsafeMutablePointer<CChar>?
        let base = bp_gettop(L)
        let rc = source.withUnsafeBufferPointer { src in
            cfg.bytes.withUnsafeBufferPointer { c in
                src.withMemoryRebound(to: CChar.self) { s in
                    bp_load_policy(L, "@" + file, s.baseAddress, s.count, dir, policyName,
                                   c.baseAddress, c.count, test ? 1 : 0, &refs, &name)
                }
            }
        }
        defer { bp_settop(L, base) }
        if rc != 0 {
            throw PolicyLoadError.parse(topString() ?? "unknown error", file: file, path: path)
        }
        hooks.append(refs)
        defer { free(name) }
        return name.map { String(cString: $0) }
    }

    func topString() -> String? {
        var len = 0
        guard let p = bp_tostring(L, -1, &len) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
    }

    func topBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T? {
        var len = 0
        guard let p = bp_tobytes(L, -1, &len) else { return nil }
        return body(UnsafeRawBufferPointer(start: p, count: len))
    }
}
