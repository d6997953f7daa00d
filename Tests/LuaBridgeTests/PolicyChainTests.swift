import Foundation
import Protocols
import Clients
import Testing
@testable import LuaBridge

@Suite struct PolicyChainTests {
    let logger = TestPolicies.logger

    func chain(_ specs: PolicySpec..., limits: PolicyLimits = PolicyLimits(states: 2),
               store: ClientStateStore = ClientStateStore()) throws -> PolicyChain {
        try PolicyChain(specs: specs, limits: limits, logger: logger, stateStore: store)
    }

    @Test func dhcpHookDecidesLikeDnsmasq() throws {
        let c = try chain(TestPolicies.spec("default.lua"))
        #expect(c.policies == [.init(name: "default", path: TestPolicies.spec("default.lua").path, hooks: ["dhcp"])])
        let plain = c.decide(TestPolicies.dhcp())
        #expect(plain?.filename == "undionly.kpxe")
        #expect(plain?.policy == "default")
        let ipxe = c.decide(TestPolicies.dhcp(ipxe: true))
        #expect(ipxe?.filename == "bootstrap.ipxe")
        #expect(ipxe?.note == "ipxe")
        // no tftp hook: nobody decides
        #expect(c.decide(BootRequest(kind: .tftp, mac: "52:54:00:12:34:56", path: "x")) == nil)
    }

    @Test func tftpAndHttpHooks() throws {
        let c = try chain(TestPolicies.spec("files.lua"))
        let gen = c.decide(BootRequest(kind: .tftp, mac: "52:54:00:aa:bb:cc", path: "generated.txt"))
        #expect(gen?.content == Array("hello 52-54-00-aa-bb-cc".utf8))
        #expect(c.decide(BootRequest(kind: .tftp, mac: "52:54:00:aa:bb:cc", path: "secret"))?.refuse == "not for you")
        #expect(c.decide(BootRequest(kind: .tftp, mac: "52:54:00:aa:bb:cc", path: "old.kpxe"))?.path == "undionly.kpxe")
        #expect(c.decide(BootRequest(kind: .tftp, mac: "52:54:00:aa:bb:cc", path: "other")) == nil)

        let http = c.decide(BootRequest(kind: .http, mac: "52:54:00:aa:bb:cc", path: "/boot.ipxe", query: ["host": "web 1"]))
        #expect(http?.status == 200)
        #expect(http?.contentType == "text/plain")
        #expect(http?.ipxeScript == """
            #!ipxe
            set bpq20:hex 20
            echo Booting 52:54:00:aa:bb:cc
            kernel http://10.0.0.1/vmlinuz console=ttyS0 hostname=web${bpq20:string}1
            initrd http://10.0.0.1/initrd.img
            boot

            """)
        let opts = c.decide(BootRequest(kind: .http, mac: "52:54:00:aa:bb:cc", userClass: ["a", "b"],
                                        options: [60: Array("PXEClient".utf8)], path: "/opts"))
        #expect(opts?.content == Array("PXEClient".utf8))
        #expect(opts?.note == "2")
    }

    @Test func httpHookSeesMethodHeadersAndBody() throws {
        let c = try chain(TestPolicies.spec("callback.lua"))
        var post = BootRequest(kind: .http, mac: "52:54:00:aa:bb:cc", path: "/echo")
        post.method = "POST"
        post.headers = ["x-secret": "s3", "content-type": "text/plain"]
        post.body = Array("done\u{0}bytes".utf8)
        #expect(c.decide(post)?.content == Array("POST|s3|done\u{0}bytes|2".utf8))
        var get = BootRequest(kind: .http, mac: "52:54:00:aa:bb:cc", path: "/echo")
        get.method = "GET"
        #expect(c.decide(get)?.content == Array("GET|-||0".utf8))
        #expect(c.decide(TestPolicies.dhcp())?.filename == "nil/nil/0")
    }

    @Test func chainOrderPassAndStop() throws {
        let c = try chain(TestPolicies.spec("pass.lua"), TestPolicies.spec("only_uefi.lua"), TestPolicies.spec("default.lua"))
        let uefi = c.decideTraced(TestPolicies.dhcp(firmware: .uefi))
        #expect(uefi.decision?.filename == "ipxe.efi")
        #expect(uefi.decision?.policy == "only_uefi")
        #expect(uefi.decision?.options == [66: Array("10.0.0.1".utf8), 51: [0, 0, 0x0e, 0x10], 77: Array("ab".utf8)])
        #expect(uefi.steps.map(\.policy) == ["pass", "only_uefi"])
        #expect(uefi.steps.map(\.outcome) == [.passed, .decided])

        let bios = c.decideTraced(TestPolicies.dhcp())
        #expect(bios.decision?.filename == "undionly.kpxe")
        #expect(bios.steps.map(\.outcome) == [.passed, .passed, .decided])

        // Reversed order: default decides first.
        let r = try chain(TestPolicies.spec("default.lua"), TestPolicies.spec("only_uefi.lua"))
        #expect(r.decide(TestPolicies.dhcp(firmware: .uefi))?.filename == "undionly.kpxe")
    }

    @Test func perPolicyConfig() throws {
        let c = try chain(
            TestPolicies.spec("config_echo.lua", ["greeting": "hi", "count": 3, "list": ["a", "b"], "nested": ["flag": true]]))
        #expect(c.decide(TestPolicies.dhcp())?.note == "hi 3 b true")
        let d = try chain(TestPolicies.spec("default.lua", ["loader": "custom.kpxe", "next_server": "192.168.77.1"]))
        let dec = d.decide(TestPolicies.dhcp())
        #expect(dec?.filename == "custom.kpxe")
        #expect(dec?.nextServer == "192.168.77.1")
        #expect(c.policies[0].name == "config-echo")
        let named = try chain(TestPolicies.spec("default.lua", name: "mine"))
        #expect(named.decide(TestPolicies.dhcp())?.policy == "mine")
    }

    @Test func requireLoadsModulesFromThePolicyDirectory() throws {
        let c = try chain(TestPolicies.spec("uses_helper.lua", ["who": "me"]))
        let d = c.decide(TestPolicies.dhcp(ipxe: true))
        #expect(d?.filename == "helper.ipxe")
        #expect(d?.note == "me")
    }

    @Test func stateIsSharedAcrossHooksAndStates() throws {
        let store = ClientStateStore()
        let c = try chain(TestPolicies.spec("once.lua"), limits: PolicyLimits(states: 4), store: store)
        let mac = "52:54:00:00:00:01"
        #expect(c.decide(TestPolicies.dhcp(mac: mac))?.filename == "install.ipxe")
        #expect(c.decide(BootRequest(kind: .http, mac: mac, path: "/done"))?.content == Array("ok".utf8))
        #expect(store.get(mac: "52-54-00-00-00-01") == ["installed": true, "at": "done", "n": 1])
        // Every state sees it (threads pick different states).
        for _ in 0..<20 {
            #expect(c.decide(TestPolicies.dhcp(mac: mac))?.ignore == true)
        }
        // A second chain (e.g. after reload) sharing the store sees it too.
        let c2 = try chain(TestPolicies.spec("once.lua"), store: store)
        #expect(c2.decide(TestPolicies.dhcp(mac: mac))?.note == "installed")
        #expect(c.decide(TestPolicies.dhcp(mac: "52:54:00:00:00:02"))?.filename == "install.ipxe")
        _ = c.decide(BootRequest(kind: .http, mac: mac, path: "/reset"))
        #expect(c.decide(TestPolicies.dhcp(mac: mac))?.filename == "install.ipxe")
    }

    @Test func stateExpires() throws {
        final class Clock: @unchecked Sendable { var t = Date(timeIntervalSince1970: 1000) }
        let clock = Clock()
        let store = ClientStateStore(limits: StateLimits(defaultTTL: 60), now: { clock.t })
        let c = try chain(TestPolicies.spec("once.lua", ["ttl": 10]), store: store)
        let mac = "52:54:00:00:00:03"
        _ = c.decide(BootRequest(kind: .http, mac: mac, path: "/done"))
        #expect(c.decide(TestPolicies.dhcp(mac: mac))?.ignore == true)
        clock.t = clock.t.addingTimeInterval(11)
        #expect(c.decide(TestPolicies.dhcp(mac: mac))?.filename == "install.ipxe")
    }

    @Test func logAndPrintGoToTheLogger() throws {
        let cap = LogCapture()
        let c = try PolicyChain(specs: [TestPolicies.spec("logger.lua")], limits: PolicyLimits(states: 3),
                                logger: cap.logger)
        // top-level log runs once per state but is logged once
        #expect(cap.lines.filter { $0.1 == "loading logger" }.count == 1)
        _ = c.decide(TestPolicies.dhcp())
        let msgs = cap.lines.map(\.1)
        #expect(msgs.contains("dhcp from 52:54:00:12:34:56"))
        #expect(msgs.contains("warn 3"))
        #expect(msgs.contains("printed\t1\ttrue"))
        let warn = cap.lines.first { $0.1 == "warn 3" }
        #expect(warn?.0 == .warning)
        #expect(warn?.2["at"] == "logger.lua:5")
        #expect(warn?.2["policy"] == "logger")
    }

    // MARK: failures

    @Test func syntaxErrorNamesFileAndLine() throws {
        #expect {
            _ = try chain(TestPolicies.spec("syntax_error.lua"))
        } throws: { e in
            let e = e as! PolicyLoadError
            return e.file == "syntax_error.lua" && e.line == 4 && e.message.contains("expected")
                && e.description.hasPrefix("syntax_error.lua:4: ")
        }
    }

    @Test func loadErrorsAreClear() throws {
        let notTable = #expect(throws: PolicyLoadError.self) { try chain(TestPolicies.spec("not_table.lua")) }
        #expect(notTable?.description == "not_table.lua: policy must return a table of hooks {name=, dhcp=, tftp=, http=}, got number")
        let badField = #expect(throws: PolicyLoadError.self) { try chain(TestPolicies.spec("bad_field.lua")) }
        #expect(badField?.message.contains("unknown policy field 'dchp'") == true)
        let missing = #expect(throws: PolicyLoadError.self) { try chain(TestPolicies.spec("nope.lua")) }
        #expect(missing?.message.contains("cannot read") == true)
    }

    /// A hook reads `req.options` decoded from bytes the host keeps for the current request
    /// only: a request a policy kept from an earlier call reads an empty table, never another
    /// request's options, and options larger than the host's first buffer arrive whole.
    @Test func optionsBelongToTheirOwnRequest() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-options-\(UUID()).lua")
        try Data("""
            local kept
            return {
              name = "options",
              dhcp = function(req)
                -- Keeps one request without reading its options during its own call.
                if req.mac == "52:54:00:00:00:03" then kept = req; return nil end
                local old = kept and (kept.options[60] or "empty") or "none"
                local size = 0
                for _, v in pairs(req.options) do size = size + #v end
                return { filename = (req.options[60] or "-") .. "|" .. old .. "|" .. size }
              end,
            }
            """.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try PolicyChain(specs: [PolicySpec(path: url.path)], limits: PolicyLimits(states: 1), logger: logger)
        var first = TestPolicies.dhcp()
        first.options = [60: Array("PXEClient:first".utf8)]
        #expect(c.decide(first)?.filename == "PXEClient:first|none|15")
        var third = TestPolicies.dhcp(mac: "52:54:00:00:00:03")
        third.options = [60: Array("PXEClient:third".utf8)]
        #expect(c.decide(third) == nil)
        // 3 x 250 bytes: more than the 512 bytes the state's option buffer starts with.
        var second = TestPolicies.dhcp(mac: "52:54:00:00:00:02")
        second.options = [60: Array("PXEClient:second".utf8), 43: [UInt8](repeating: 0x41, count: 250),
                          77: [UInt8](repeating: 0x42, count: 250), 97: [UInt8](repeating: 0x43, count: 250)]
        #expect(c.decide(second)?.filename == "PXEClient:second|empty|766")
        #expect(c.decide(first)?.filename == "PXEClient:first|empty|15")
    }

    /// Empty list fields are tables a hook can use like any other (the request table makes
    /// them on first read), and full ones carry their values.
    @Test func emptyListFieldsAreTables() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-lists-\(UUID()).lua")
        try Data("""
            return {
              name = "lists",
              dhcp = function(req)
                local parts = {}
                for _, k in ipairs({"user_class", "ipxe_features", "query"}) do
                  local t = req[k]
                  local n = 0
                  for _ in pairs(t) do n = n + 1 end
                  parts[#parts + 1] = k .. "=" .. type(t) .. ":" .. n .. ":" .. tostring(rawequal(t, req[k]))
                end
                table.insert(req.user_class, "added")
                parts[#parts + 1] = "first=" .. tostring(req.user_class[1]) .. ",last=" .. req.user_class[#req.user_class]
                return { filename = table.concat(parts, " ") }
              end,
            }
            """.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try PolicyChain(specs: [PolicySpec(path: url.path)], limits: PolicyLimits(states: 1), logger: logger)
        #expect(c.decide(TestPolicies.dhcp())?.filename
                == "user_class=table:0:true ipxe_features=table:0:true query=table:0:true first=added,last=added")
        var full = TestPolicies.dhcp()
        full.userClass = ["iPXE", "rack1"]
        full.ipxeFeatures = ["http": 1]
        #expect(c.decide(full)?.filename
                == "user_class=table:2:true ipxe_features=table:1:true query=table:0:true first=iPXE,last=added")
    }

    @Test func bytecodeIsRefused() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-bytecode-\(UUID()).lua")
        try Data([0x1b, 0x4c, 0x75, 0x61, 0x54, 0x00, 0x19, 0x93]).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let e = #expect(throws: PolicyLoadError.self) {
            try PolicyChain(specs: [PolicySpec(path: url.path)], logger: logger)
        }
        #expect(e?.message.contains("attempt to load a binary chunk") == true)
    }

    @Test func runtimeErrorIsLoggedCountedAndSkipped() throws {
        let cap = LogCapture()
        let c = try PolicyChain(specs: [TestPolicies.spec("runtime_error.lua"), TestPolicies.spec("default.lua")],
                                limits: PolicyLimits(states: 1), logger: cap.logger)
        let r = c.decideTraced(TestPolicies.dhcp())
        #expect(r.decision?.filename == "undionly.kpxe")
        guard case .error(let msg) = r.steps[0].outcome else { Issue.record("expected error"); return }
        #expect(msg.hasPrefix("runtime_error.lua:4: attempt to index a nil value"))
        #expect(cap.lines.contains { $0.0 == .warning && $0.1.contains("runtime_error.lua:4:") })
        // The state still works afterwards.
        #expect(c.decide(TestPolicies.dhcp(ipxe: true))?.filename == "bootstrap.ipxe")
    }

    static func threadCPUms() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }

    @Test func infiniteLoopIsCutQuickly() throws {
        let c = try chain(TestPolicies.spec("loop.lua"), TestPolicies.spec("default.lua"),
                          limits: PolicyLimits(instructionBudget: 100_000_000, cpuTime: 20, wallClock: 40, states: 1))
        for req in [TestPolicies.dhcp(), BootRequest(kind: .tftp, mac: "52:54:00:12:34:56", path: "x")] {
            // CPU time of this thread is what the loop costs the server; wall time also
            // counts how long other work on this busy 2-core machine kept us off the CPU.
            let c0 = Self.threadCPUms(), t0 = DispatchTime.now().uptimeNanoseconds
            let r = c.decideTraced(req)
            let cpu = Self.threadCPUms() - c0
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            #expect(cpu < 50, "loop used \(cpu) ms CPU")
            #expect(ms < 250, "loop took \(ms) ms wall")
            print("LuaBridge: infinite loop cut after \(cpu) ms CPU, \(ms) ms wall (cpuTime 20, wallClock 40)")
            guard case .budgetExceeded(let msg) = r.steps[0].outcome else {
                Issue.record("expected budget, got \(r.steps)"); continue
            }
            #expect(msg.hasPrefix("loop.lua:"))
            #expect(msg.contains("budget"))
        }
        #expect(c.decide(TestPolicies.dhcp())?.filename == "undionly.kpxe")
        // Default limits: reported, not asserted (depends on the machine's load).
        let d = try chain(TestPolicies.spec("loop.lua"), limits: PolicyLimits(states: 1))
        let d0 = DispatchTime.now().uptimeNanoseconds
        _ = d.decide(TestPolicies.dhcp())
        print("LuaBridge: infinite loop cut after \(Double(DispatchTime.now().uptimeNanoseconds - d0) / 1e6) ms with default limits")
        // The instruction budget trips too, long before the clock.
        let i = try chain(TestPolicies.spec("loop.lua"), limits: PolicyLimits(instructionBudget: 10_000, cpuTime: 10_000, wallClock: 10_000, states: 1))
        // Measured in this thread's CPU time: a loaded machine may deschedule the thread, but
        // it cannot make 10,000 instructions cost 50 ms of CPU.
        let cpu0 = Self.threadCPUms()
        guard case .budgetExceeded = i.decideTraced(TestPolicies.dhcp()).steps[0].outcome else {
            Issue.record("expected budget"); return
        }
        #expect(Self.threadCPUms() - cpu0 < 50)
    }

    @Test func allocationBombHitsTheMemoryCap() throws {
        let c = try chain(TestPolicies.spec("alloc_bomb.lua"), TestPolicies.spec("files.lua"),
                          limits: PolicyLimits(cpuTime: 5_000, wallClock: 5_000, memoryBytes: 8 << 20, states: 1))
        let r = c.decideTraced(TestPolicies.dhcp())
        #expect(r.decision == nil)
        guard case .memoryExceeded(let msg) = r.steps[0].outcome else { Issue.record("got \(r.steps)"); return }
        #expect(msg.contains("memory limit exceeded"))
        #expect(msg.hasPrefix("alloc_bomb.lua:2:"))
        let t = c.decideTraced(BootRequest(kind: .tftp, mac: "52:54:00:aa:bb:cc", path: "generated.txt"))
        guard case .memoryExceeded = t.steps[0].outcome else { Issue.record("got \(t.steps)"); return }
        #expect(t.decision?.content == Array("hello 52-54-00-aa-bb-cc".utf8))
    }

    @Test func garbageNearTheCapIsNotAnError() throws {
        // Generous time limits: this is about memory, and a loaded machine must not turn it into a budget trip.
        // The cap leaves room for the 4 MB live table, two 256 KB strings and the library every
        // state carries (6 MB stopped leaving it when the grub builder joined the library);
        // the hook still makes 15 MB of garbage, 2x the cap.
        let c = try chain(TestPolicies.spec("churn.lua"), limits: PolicyLimits(cpuTime: 60_000, wallClock: 60_000, memoryBytes: 7 << 20, states: 1))
        for _ in 0..<3 {
            let r = c.decideTraced(TestPolicies.dhcp())
            #expect(r.steps.map(\.outcome) == [.decided], "\(r.steps)")
            #expect(r.decision?.note?.hasSuffix(" 40") == true)
        }
    }

    @Test(arguments: [
        ("os", "attempt to index a nil value (global 'os')"),
        ("io", "attempt to index a nil value (global 'io')"),
        ("load", "attempt to call a nil value (global 'load')"),
        ("loadfile", "attempt to call a nil value (global 'loadfile')"),
        ("dofile", "attempt to call a nil value (global 'dofile')"),
        ("dump", "attempt to call a nil value (field 'dump')"),
        ("require_up", "invalid module name '../escape'"),
        ("require_abs", "invalid module name '/etc/passwd'"),
        ("require_dot", "invalid module name 'sub.mod'"),
        ("strmeta", "attempt to index a boolean value"),
        ("gc", "collectgarbage: only \"count\" is allowed"),
        ("debug", "attempt to index a nil value (global 'debug')"),
        ("package", "attempt to index a nil value (global 'package')"),
        ("gc_meta", "__gc metamethods are not allowed"),
        ("reqmeta", "attempt to index a string value"),
        ("scriptmeta", "attempt to call a nil value (field 'render')"),
    ])
    func sandboxEscapesAreRefused(what: String, expected: String) throws {
        let c = try chain(TestPolicies.spec("escape.lua", ["what": .string(what)]), limits: PolicyLimits(states: 1))
        let r = c.decideTraced(TestPolicies.dhcp())
        #expect(r.decision == nil)
        guard case .error(let msg) = r.steps[0].outcome else { Issue.record("\(what): \(r.steps)"); return }
        #expect(msg.hasPrefix("escape.lua:"), "\(msg)")
        #expect(msg.contains(expected), "\(what): \(msg)")
    }

    @Test(arguments: [
        ("typo", "decisions.lua:12: unknown decision field 'filenme'"),
        ("type", "decisions.lua:12: decision.filename: expected string, got number"),
        ("server", "decision.next_server: expected an IPv4 or IPv6 address, got 'not-an-ip'"),
        ("status", "decision.status: 999 is not an HTTP status"),
        ("option", "decision.options: option code 300 is outside 1..254"),
        ("optval", "decision.options[43]: expected string, integer or array of strings, got boolean"),
        ("string", "hook must return a table or nil, got string"),
        ("reqfield", "decisions.lua:10: request has no field 'hostnmae'"),
    ])
    func badDecisionsNameTheField(kind: String, expected: String) throws {
        let c = try chain(TestPolicies.spec("decisions.lua", ["kind": .string(kind)]), limits: PolicyLimits(states: 1))
        let r = c.decideTraced(TestPolicies.dhcp())
        #expect(r.decision == nil)
        guard case .error(let msg) = r.steps[0].outcome else { Issue.record("\(kind): \(r.steps)"); return }
        #expect(msg.contains(expected), "\(kind): \(msg)")
    }

    @Test func ipxeQuoting() throws {
        let c = try chain(TestPolicies.spec("quoting.lua"))
        let q: [String: String] = ["a": "two words", "b": "#not-a-comment", "c": "||", "d": "", "e": "-n", "f": "tab\there"]
        let d = c.decide(BootRequest(kind: .http, mac: "52:54:00:12:34:56", path: "/", query: q))
        #expect(d?.ipxeScript == """
            #!ipxe
            set bpq09:hex 09
            set bpq20:hex 20
            set bpq23:hex 23
            set bpq7c:hex 7c
            echo two${bpq20:string}words
            echo ${bpq23:string}not-a-comment
            echo ${bpq7c:string}|
            echo ${bpq-empty}
            echo -- -n
            echo tab${bpq09:string}here
            set menu-title My ${bpq-empty} boot menu
            chain http://10.0.0.1/boot?mac=${net0/mac}&x=a${bpq20:string}b

            """)
        // A literal ${...} cannot be written for iPXE: refused, with the reason.
        let bad = c.decideTraced(BootRequest(kind: .http, mac: "52:54:00:12:34:56", path: "/", query: ["a": "${root}"]))
        guard case .error(let msg) = bad.steps[0].outcome else { Issue.record("\(bad.steps)"); return }
        #expect(msg.contains("use ipxe.var(name)"))
    }

    @Test func parallelDecisionsDoNotCorrupt() throws {
        let c = try chain(TestPolicies.spec("pass.lua"), TestPolicies.spec("files.lua"), TestPolicies.spec("default.lua"),
                          limits: PolicyLimits(states: 4))
        let threads = 8, per = 2_000
        final class Box: @unchecked Sendable { var bad = 0; var why: [String] = []; let lock = NSLock() }
        let box = Box()
        let t0 = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var bad = 0
            var why: [String] = []
            for i in 0..<per {
                let mac = String(format: "52:54:00:%02x:%02x:%02x", t, (i >> 8) & 0xff, i & 0xff)
                switch i % 3 {
                case 0:
                    let r = c.decideTraced(TestPolicies.dhcp(mac: mac, ipxe: i % 2 == 0))
                    if r.decision?.filename != (i % 2 == 0 ? "bootstrap.ipxe" : "undionly.kpxe") {
                        bad += 1
                        why.append("\(mac) \(i): \(r.steps)")
                    }
                case 1:
                    let r = c.decideTraced(BootRequest(kind: .tftp, mac: mac, path: "generated.txt"))
                    let want = "hello " + mac.replacingOccurrences(of: ":", with: "-")
                    if r.decision?.content != Array(want.utf8) {
                        bad += 1
                        why.append("\(mac) \(i): \(r.steps)")
                    }
                default:
                    let r = c.decideTraced(BootRequest(kind: .http, mac: mac, path: "/boot.ipxe", query: ["host": "h\(i)"]))
                    let d = r.decision
                    if d?.ipxeScript?.contains("hostname=h\(i)\n") != true || d?.ipxeScript?.contains(mac) != true {
                        bad += 1
                        why.append("\(mac) \(i): \(r.steps)")
                    }
                }
            }
            box.lock.lock(); box.bad += bad; box.why += why; box.lock.unlock()
        }
        let secs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        print("LuaBridge parallel: \(threads * per) mixed decisions on \(threads) threads in \(secs) s (\(Int(Double(threads * per) / secs))/s)")
        #expect(box.bad == 0, "\(box.why.prefix(3))")
    }

    @Test func benchmarkMedianDecision() throws {
        let c = try chain(TestPolicies.spec("default.lua"), limits: PolicyLimits(states: 1))
        let req = TestPolicies.dhcp(ipxe: true)
        for _ in 0..<2_000 { _ = c.decide(req) }
        var samples: [UInt64] = []
        samples.reserveCapacity(20_000)
        for _ in 0..<20_000 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = c.decide(req)
            samples.append(DispatchTime.now().uptimeNanoseconds - t0)
        }
        samples.sort()
        let median = Double(samples[samples.count / 2]) / 1000
        let p99 = Double(samples[samples.count * 99 / 100]) / 1000
        #expect(c.states[0].memoryUsed < 4 << 20, "state grew to \(c.states[0].memoryUsed) bytes")
        print("LuaBridge benchmark: state uses \(c.states[0].memoryUsed / 1024) KiB after 22,000 decisions")
        print("LuaBridge benchmark: median \(median) µs, p99 \(p99) µs per decision (default.lua, 20,000 decisions)")
        #expect(median < 1000)
    }
}
