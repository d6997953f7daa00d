import Clients
import Foundation
import Logging
import Protocols

/// Runs policy test files (`*_test.lua`, `bootpolicy test`). A test file is Lua in the same
/// sandbox as policies plus a test API: `policy_chain{...}` builds a real `PolicyChain` behind
/// the same `BootPipeline` as `serve` (so a `tftp` request learns what the same client's `dhcp`
/// request said, and a generated script is served back),
/// `fixture(path)` loads a recorded request through the host's loader, `request{...}` builds
/// one by hand, `test(name, fn)` runs a test, and `eq/is_nil/is_true/contains/silent` assert.
/// See policies/README.md.
public struct PolicyTestRunner: Sendable {
    public struct TestResult: Sendable, Equatable {
        public var name: String
        public var passed: Bool
        /// Why it failed: `file_test.lua:12: expected ... got ...` and the request summary.
        public var message: String?
    }

    public struct FileResult: Sendable, Equatable {
        public var file: String
        public var tests: [TestResult]
        /// The file itself failed (syntax error, error outside `test`).
        public var error: String?
        public var passed: Int { tests.filter(\.passed).count }
        /// Failed tests, plus one when the file itself failed.
        public var failed: Int { tests.filter { !$0.passed }.count + (error == nil ? 0 : 1) }
    }

    /// The address a test request reached when it names none (`server_address`), as in the lab.
    public static let labServerAddress = "192.168.77.2"

    /// Limits for the policy chains the tests build.
    public var limits: PolicyLimits
    /// Limits for the test file itself (generous: it drives whole chains).
    public var testLimits: PolicyLimits
    public var logger: Logger
    let loadFixture: @Sendable (URL) throws -> BootRequest

    public init(
        limits: PolicyLimits = PolicyLimits(states: 1),
        testLimits: PolicyLimits = PolicyLimits(instructionBudget: 1_000_000_000, cpuTime: 10_000, wallClock: 60_000,
                                                memoryBytes: 128 << 20, states: 1),
        logger: Logger, loadFixture: @escaping @Sendable (URL) throws -> BootRequest
    ) {
        self.limits = limits
        self.testLimits = testLimits
        self.logger = logger
        self.loadFixture = loadFixture
    }

    /// `*_test.lua` files directly in `directory`, sorted.
    public static func testFiles(in directory: URL) -> [URL] {
        let items = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        return items.filter { $0.lastPathComponent.hasSuffix("_test.lua") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    public func run(files: [URL]) -> [FileResult] { files.map(run(file:)) }

    public func run(file: URL) -> FileResult {
        let name = file.lastPathComponent
        guard let data = FileManager.default.contents(atPath: file.path) else {
            return FileResult(file: name, tests: [], error: "\(name): cannot read test file")
        }
        let host = TestHost(runner: self, dir: file.deletingLastPathComponent(), logger: logger)
        do {
            let state = try LuaState(host: host, limits: testLimits)
            _ = try state.load(source: Array(data), file: name, path: file.path,
                               dir: file.deletingLastPathComponent().path, policyName: name, config: [:], test: true)
            return FileResult(file: name, tests: host.results, error: nil)
        } catch {
            return FileResult(file: name, tests: host.results, error: error.description)
        }
    }

    /// The closing line: `N passed, N failed`.
    public static func summary(_ results: [FileResult]) -> String {
        "\(results.map(\.passed).reduce(0, +)) passed, \(results.map(\.failed).reduce(0, +)) failed"
    }
}

/// The test API's Swift half.
final class TestHost: LuaHost {
    let runner: PolicyTestRunner
    let dir: URL
    /// One pipeline per `policy_chain{}`, each with its own client directory in memory.
    var chains: [BootPipeline] = []
    var results: [PolicyTestRunner.TestResult] = []

    init(runner: PolicyTestRunner, dir: URL, logger: Logger) {
        self.runner = runner
        self.dir = dir
        super.init(logger: logger, store: ClientStateStore(), tokens: .forPolicyTests)
    }

    private func resolve(_ path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : dir.appendingPathComponent(path)
    }

    override func call(_ op: Op, _ args: LuaWire.Value) -> Result<LuaWire.Value?, HostError> {
        switch op {
        case .testChain:
            guard case .table(let entries)? = args[1] else { return .failure(HostError("policy_chain: expected a list")) }
            var specs: [PolicySpec] = []
            for (_, e) in entries.sorted(by: { a, b in
                if case .int(let x) = a.0, case .int(let y) = b.0 { return x < y }
                return false
            }) {
                guard let file = e["file"]?.text else { return .failure(HostError("policy_chain: each entry needs file=")) }
                var config: [String: PolicyValue] = [:]
                if let c = e["config"] {
                    switch PolicyValue(lua: c) {
                    case .table(let t)?: config = t
                    case .list(let l)? where l.isEmpty: config = [:]
                    default: return .failure(HostError("policy_chain: config of \(file) must be a table"))
                    }
                }
                specs.append(PolicySpec(name: e["name"]?.text ?? "", path: resolve(file).path, config: config))
            }
            var sources: [DataSource] = []
            // What `serve` tells policies with its defaults (HTTP 8080, TFTP 69), unless the
            // test says otherwise.
            var server = ServerFacts(httpPort: 8080, tftpPort: 69, dhcpPorts: [67, 4011])
            if let opts = args[2], case .table = opts {
                if case .table(let named)? = opts["data"] {
                    for (k, v) in named {
                        guard let name = k.text else { return .failure(HostError("policy_chain: data names must be text")) }
                        if let file = v.text {
                            sources.append(DataSource(name: name, path: resolve(file).path))
                        } else if let file = v["file"]?.text {
                            var format = DataSource.KeyFormat.verbatim
                            if let f = v["key_format"]?.text {
                                guard let parsed = DataSource.KeyFormat(rawValue: f) else {
                                    return .failure(HostError("policy_chain: data \(name): key_format must be verbatim or mac"))
                                }
                                format = parsed
                            }
                            sources.append(DataSource(name: name, path: resolve(file).path, key: v["key"]?.text, keyFormat: format))
                        } else {
                            return .failure(HostError("policy_chain: data \(name): expected a file name or {file=, key=}"))
                        }
                    }
                    sources.sort { $0.name < $1.name }
                }
                if case .table? = opts["server"], let facts = opts["server"] {
                    if let a = facts["address"]?.text { server.address = a }
                    for (field, path) in [("http_port", \ServerFacts.httpPort), ("tftp_port", \ServerFacts.tftpPort)] {
                        switch facts[field] {
                        case .int(let p)?: server[keyPath: path] = Int(p)
                        case .bool(false)?: server[keyPath: path] = nil
                        case nil: break
                        default: return .failure(HostError("policy_chain: server.\(field) must be a port number or false"))
                        }
                    }
                }
            }
            do {
                let data: PolicyData
                do { data = try PolicyData.load(sources) } catch { return .failure(HostError("policy_chain: \(error)")) }
                let directory = ClientDirectory(logger: logger)
                let chain = try PolicyChain(specs: specs, limits: runner.limits, logger: logger, stateStore: directory.state,
                                            scriptTokens: .forPolicyTests, data: data, server: server)
                chains.append(BootPipeline(chain: chain, directory: directory, logger: logger))
                return .success(.int(Int64(chains.count)))
            } catch {
                return .failure(HostError("policy_chain: \(error.description)"))
            }
        case .testRun:
            guard case .int(let id)? = args[1], id >= 1, Int(id) <= chains.count else {
                return .failure(HostError("chain: unknown chain"))
            }
            guard let reqValue = args[2] else { return .failure(HostError("chain: expected a request")) }
            var req: BootRequest
            do { req = try BootRequest(lua: reqValue) } catch { return .failure(error) }
            // As `serve` fills in the address the request reached (and `explain` assumes):
            // the lab's server address unless the test names one.
            if req.serverAddress == nil { req.serverAddress = PolicyTestRunner.labServerAddress }
            let r = chains[Int(id) - 1].decideTraced(req)
            for step in r.steps {
                switch step.outcome {
                case .error(let m), .budgetExceeded(let m), .memoryExceeded(let m):
                    return .failure(HostError("policy '\(step.policy)' failed: \(m)"))
                default: continue
                }
            }
            return .success(r.decision?.luaValue)
        case .testFixture:
            guard let path = args[1]?.text else { return .failure(HostError("fixture: expected a path")) }
            do {
                return .success(try runner.loadFixture(resolve(path)).luaValue)
            } catch {
                return .failure(HostError("fixture \(path): \(error)"))
            }
        case .testRequest:
            guard let v = args[1] else { return .failure(HostError("request: expected a table")) }
            do { return .success(try BootRequest(lua: v).luaValue) } catch { return .failure(error) }
        case .testResult:
            let name = args[1]?.text ?? "?"
            let ok: Bool
            if case .bool(true)? = args[2] { ok = true } else { ok = false }
            results.append(.init(name: name, passed: ok, message: ok ? nil : LuaMessage.firstLine(args[3]?.text ?? "failed")))
            return .success(nil)
        default:
            return super.call(op, args)
        }
    }
}

extension PolicyValue {
    /// From a Lua value: arrays (keys 1...n) become lists, other tables string-keyed tables.
    init?(lua v: LuaWire.Value) {
        switch v {
        case .string(let b): self = .string(String(decoding: b, as: UTF8.self))
        case .int(let i): self = .integer(Int(i))
        case .double(let d): self = .number(d)
        case .bool(let b): self = .bool(b)
        case .none: return nil
        case .table(let pairs):
            let ints = pairs.compactMap { p -> Int64? in if case .int(let i) = p.0 { return i } else { return nil } }
            if ints.count == pairs.count, Set(ints) == Set(1...Int64(max(1, pairs.count))) || pairs.isEmpty {
                var list = [PolicyValue](repeating: .bool(false), count: pairs.count)
                for (k, val) in pairs {
                    guard case .int(let i) = k, let pv = PolicyValue(lua: val) else { return nil }
                    list[Int(i) - 1] = pv
                }
                self = .list(list)
                return
            }
            var t: [String: PolicyValue] = [:]
            for (k, val) in pairs {
                guard let key = k.text, let pv = PolicyValue(lua: val) else { return nil }
                t[key] = pv
            }
            self = .table(t)
        }
    }
}
