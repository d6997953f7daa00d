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
    /// The same server on the lab's IPv6 link, for DHCPv6 requests.
    public static let labServerAddress6 = "fd77::2"

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
    /// One pipeline per `policy_chain{}`, each with its own client directory in memory and
    /// its own clock (`chain:advance`).
    var chains: [BootPipeline] = []
    var directories: [ClientDirectory] = []
    var clocks: [TestClock] = []
    var results: [PolicyTestRunner.TestResult] = []
    /// What the chains' policies logged since the last test ended: shown with a failure.
    let logged = LogLines()

    final class TestClock: @unchecked Sendable {
        private let lock = NSLock()
        private var offset: TimeInterval = 0
        func now() -> Date { lock.withLock { Date().addingTimeInterval(offset) } }
        func advance(_ s: TimeInterval) { lock.withLock { offset += s } }
    }

    final class LogLines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ line: String) { lock.withLock { if lines.count < 200 { lines.append(line) } } }
        func take() -> [String] { lock.withLock { defer { lines = [] }; return lines } }
    }

    struct CaptureHandler: LogHandler {
        let sink: LogLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let meta = event.metadata ?? [:]
            let at = meta["at"].map { " (\($0))" } ?? ""
            let policy = meta["policy"].map { "\($0): " } ?? ""
            sink.add("\(event.level) \(policy)\(event.message)\(at)")
        }
    }

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
                            do {
                                sources.append(try DataSource.parse(name: name, path: resolve(file).path, key: v["key"]?.text,
                                                                    keyFormat: v["key_format"]?.text))
                            } catch {
                                return .failure(HostError("policy_chain: data \(name): \(error.message)"))
                            }
                        } else {
                            return .failure(HostError("policy_chain: data \(name): expected a file name or {file=, key=}"))
                        }
                    }
                    sources.sort { $0.name < $1.name }
                }
                if case .table? = opts["server"], let facts = opts["server"] {
                    if let a = facts["address"]?.text { server.address = a }
                    for (field, path) in [("http_port", \ServerFacts.httpPort), ("https_port", \ServerFacts.httpsPort),
                                          ("tftp_port", \ServerFacts.tftpPort)] {
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
                let clock = TestClock()
                let directory = ClientDirectory(logger: logger, now: { clock.now() })
                let sink = logged
                let policyLogger = Logger(label: "bootpolicy.test.policy") { _ in CaptureHandler(sink: sink) }
                let chain = try PolicyChain(specs: specs, limits: runner.limits, logger: policyLogger, stateStore: directory.state,
                                            scriptTokens: .forPolicyTests, data: data, server: server)
                chains.append(BootPipeline(chain: chain, directory: directory, logger: logger))
                directories.append(directory)
                clocks.append(clock)
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
            if req.serverAddress == nil { req.serverAddress = req.family == .ipv6 ? PolicyTestRunner.labServerAddress6 : PolicyTestRunner.labServerAddress }
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
            var message = ok ? nil : LuaMessage.firstLine(args[3]?.text ?? "failed")
            let lines = logged.take()
            if !ok, !lines.isEmpty {
                message! += "\n    policy log:" + lines.suffix(20).map { "\n      " + $0 }.joined()
            }
            results.append(.init(name: name, passed: ok, message: message))
            return .success(nil)
        case .testReply:
            guard case .int(let id)? = args[1], id >= 1, Int(id) <= chains.count, let reqValue = args[2] else {
                return .failure(HostError("chain:reply: unknown chain or no request"))
            }
            var req: BootRequest
            do { req = try BootRequest(lua: reqValue) } catch { return .failure(error) }
            if req.serverAddress == nil { req.serverAddress = req.family == .ipv6 ? PolicyTestRunner.labServerAddress6 : PolicyTestRunner.labServerAddress }
            return TestReply.reply(to: req, pipeline: chains[Int(id) - 1])
        case .testState:
            guard case .int(let id)? = args[1], id >= 1, Int(id) <= chains.count, let what = args[2]?.text,
                  let mac = args[3]?.text else {
                return .failure(HostError("chain:state: unknown chain"))
            }
            let store = directories[Int(id) - 1].state
            switch what {
            case "get":
                return .success(LuaHost.stateGet(store, mac: mac))
            case "clear":
                do { try store.clear(mac: mac) } catch { return .failure(HostError("chain:clear_state: \(error.description)")) }
                return .success(nil)
            default:
                return LuaHost.stateSet(store, mac: mac, values: args[4], ttl: args[5], caller: "chain:set_state")
            }
        case .testAdvance:
            guard case .int(let id)? = args[1], id >= 1, Int(id) <= chains.count else { return .failure(HostError("chain:advance: unknown chain")) }
            switch args[2] {
            case .int(let i)?: clocks[Int(id) - 1].advance(TimeInterval(i))
            case .double(let d)?: clocks[Int(id) - 1].advance(d)
            default: return .failure(HostError("chain:advance: expected seconds"))
            }
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

/// `chain:reply(req)`: the ProxyDHCP answer as the server would send it, through the same
/// screening and responder as `serve`.
enum TestReply {
    static func reply(to req: BootRequest, pipeline: BootPipeline) -> Result<LuaWire.Value?, LuaHost.HostError> {
        if req.family == .ipv6 { return reply6(to: req, pipeline: pipeline) }
        guard let server = IPv4Address(req.serverAddress ?? "") else {
            return .failure(LuaHost.HostError("chain:reply: server_address must be an IPv4 address"))
        }
        let message = req.dhcpMessage()
        let arrival = ProxyDHCPResponder.Arrival(port: req.serverPort ?? 67, serverAddress: server, interface: req.interface,
                                                 source: req.clientAddress.flatMap(IPv4Address.init) ?? .any, sourcePort: 68)
        let responder = ProxyDHCPResponder()
        func silent(_ s: ProxyDHCPResponder.Silence, _ policy: String? = nil) -> LuaWire.Value {
            var t: [(LuaWire.Value, LuaWire.Value)] = [(.string(Array("silent".utf8)), .string(Array(s.rawValue.utf8)))]
            if let policy { t.append((.string(Array("policy".utf8)), .string(Array(policy.utf8)))) }
            return .table(t)
        }
        // The server does not ask the policies about a packet it would not answer anyway.
        if case .failure(let s) = responder.screen(message, arrival: arrival) { return .success(silent(s)) }
        let r = pipeline.decideTraced(req)
        if let failed = failure(in: r.steps) { return .failure(failed) }
        switch responder.reply(to: message, arrival: arrival, decision: r.decision) {
        case .failure(let s):
            return .success(silent(s, r.decision?.policy))
        case .success(let reply):
            let m = reply.message
            func s(_ text: String) -> LuaWire.Value { .string(Array(text.utf8)) }
            var t: [(LuaWire.Value, LuaWire.Value)] = [
                (s("to"), s(reply.destination.description)), (s("port"), .int(Int64(reply.destinationPort))),
                (s("broadcast"), .bool(reply.broadcast)), (s("siaddr"), s(m.siaddr.description)),
                (s("yiaddr"), s(m.yiaddr.description)), (s("ciaddr"), s(m.ciaddr.description)),
                (s("giaddr"), s(m.giaddr.description)), (s("file"), s(m.bootFile)), (s("sname"), s(m.serverName)),
                (s("options"), .table(m.options.map { (.int(Int64($0.code)), .string($0.value)) })),
            ]
            if let type = m.messageType { t.append((s("message_type"), s(type.name))) }
            if let policy = r.decision?.policy { t.append((s("policy"), s(policy))) }
            return .success(.table(t))
        }
    }
}

extension TestReply {
    /// The first policy that failed (an error, its budget or its memory), as the test's error.
    static func failure(in steps: [PolicyStep]) -> LuaHost.HostError? {
        for step in steps {
            switch step.outcome {
            case .error(let m), .budgetExceeded(let m), .memoryExceeded(let m):
                return LuaHost.HostError("policy '\(step.policy)' failed: \(m)")
            default: continue
            }
        }
        return nil
    }

    /// The boot-only DHCPv6 answer (`DHCPv6Responder`) as `serve` would send it.
    static func reply6(to req: BootRequest, pipeline: BootPipeline) -> Result<LuaWire.Value?, LuaHost.HostError> {
        guard let server = IPv6Address(req.serverAddress ?? "") else {
            return .failure(LuaHost.HostError("chain:reply: server_address must be an IPv6 address for a DHCPv6 request"))
        }
        func s(_ text: String) -> LuaWire.Value { .string(Array(text.utf8)) }
        func silent(_ why: DHCPv6Responder.Silence, _ policy: String? = nil) -> LuaWire.Value {
            .table([(s("silent"), s(why.rawValue))] + (policy.map { [(s("policy"), s($0))] } ?? []))
        }
        let packet = DHCPv6Packet(message: req.dhcpv6Message())
        let port = req.serverPort ?? 547
        let arrival = DHCPv6Responder.Arrival(port: port, interface: req.interface,
                                              source: req.clientAddress.flatMap(IPv6Address.init) ?? IPv6Address("fe80::1")!,
                                              sourcePort: port == 4011 ? 4011 : 546, serverAddress: server)
        let responder = DHCPv6Responder(serverDUID: DUID(bytes: [0, 3, 0, 1, 0x52, 0x54, 0, 0x77, 0, 2])!)
        let screened: DHCPv6Responder.Screened
        switch responder.screen(packet, arrival: arrival) {
        case .failure(let why): return .success(silent(why))
        case .success(let x): screened = x
        }
        let r = pipeline.decideTraced(req)
        if let failed = failure(in: r.steps) { return .failure(failed) }
        switch responder.answer(screened, arrival: arrival, decision: r.decision).result {
        case .failure(let why): return .success(silent(why, r.decision?.policy))
        case .success(let reply):
            let m = reply.packet.message
            var t: [(LuaWire.Value, LuaWire.Value)] = [
                (s("to"), s(reply.destination.description)), (s("port"), .int(Int64(reply.destinationPort))),
                (s("message_type"), s(m.type.name)),
                (s("options"), .table(m.options.map { (.int(Int64($0.code)), .string($0.value)) })),
            ]
            if let url = reply.bootFileURL { t.append((s("url"), s(url))) }
            if let vc = m.options.vendorClass?.data.first { t.append((s("vendor_class"), .string(vc))) }
            if let policy = r.decision?.policy { t.append((s("policy"), s(policy))) }
            return .success(.table(t))
        }
    }
}

extension BootRequest {
    /// The DHCPv6 message a request stands for: its options as received (in code order),
    /// plus 61 and 16 from the named fields when a hand-made request lacks them.
    func dhcpv6Message() -> DHCPv6Message {
        var have = options6
        if have[DHCPv6OptionCode.clientArchitecture] == nil, let a = archCode { have[DHCPv6OptionCode.clientArchitecture] = [UInt8(a >> 8), UInt8(a & 0xff)] }
        if have[DHCPv6OptionCode.vendorClass] == nil, let v = vendorClass {
            have[DHCPv6OptionCode.vendorClass] = DHCPv6Options.vendorClassValue(enterprise: 343, [Array(v.utf8)])
        }
        if have[DHCPv6OptionCode.clientID] == nil, let d = duid.flatMap(Hex.decode) { have[DHCPv6OptionCode.clientID] = d }
        let type = DHCPv6MessageType.allCases.first { $0.name == messageType } ?? .solicit
        return DHCPv6Message(type: type, transactionID: (xid ?? 0) & 0xff_ffff,
                             options: DHCPv6Options(have.keys.sorted().map { DHCPv6Option(code: $0, value: have[$0]!) }))
    }

    /// The DHCP message a request table stands for, as near as its fields tell: every option
    /// as received, plus 53, 60 and 93 from the named fields when a hand-made request lacks them.
    func dhcpMessage() -> DHCPMessage {
        var opts = DHCPOptions()
        var have = options
        if have[53] == nil, let t = messageType, let type = DHCPMessageType.allCases.first(where: { $0.name == t }) {
            have[53] = [type.rawValue]
        }
        if have[60] == nil, let v = vendorClass { have[60] = Array(v.utf8) }
        if have[93] == nil, let a = archCode { have[93] = [UInt8(a >> 8), UInt8(a & 0xff)] }
        if have[175] == nil, isIPXE { have[175] = [] }
        for code in have.keys.sorted() { opts.set(code, have[code]!) }
        let chaddr = mac.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        let relayed = relay.flatMap { IPv4Address($0.giaddr) } ?? .any
        // A request on 4011 comes from a client that has its address; a DISCOVER broadcasts.
        let ciaddr = (serverPort == 4011 ? clientAddress.flatMap(IPv4Address.init) : nil) ?? .any
        return DHCPMessage(op: .request, xid: xid ?? 0, flags: ciaddr == .any ? 0x8000 : 0, ciaddr: ciaddr,
                           giaddr: relayed, chaddr: chaddr, options: opts)
    }
}
