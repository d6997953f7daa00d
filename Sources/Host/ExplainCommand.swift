import ArgumentParser
import Clients
import Foundation
import Logging
import LuaBridge
import Protocols

/// `bootpolicy explain`: one recorded request through the chain, step by step.
struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show a recorded request decoded, what each policy in the chain returned, and the reply's fields."
    )

    @Option(help: ArgumentHelp("A request fixture (JSON from `bootpolicy import` or `record`).", valueName: "file"))
    var request: String

    @Option(name: .customLong("policy"), help: ArgumentHelp("Policy files or shipped names, in chain order (default: the config's, else default).", valueName: "file"))
    var policies: [String] = []

    @Option(help: ArgumentHelp("YAML config file (for per-policy config).", valueName: "file"))
    var config: String?

    @Option(name: .customLong("server-address"), help: ArgumentHelp("The server address the request is taken to have reached (default 192.168.77.2; fd77::2 for a DHCPv6 request).", valueName: "address"))
    var serverAddressOption: String?

    /// The lab's address, on the family of the request.
    func address(for r: BootRequest) -> String {
        serverAddressOption ?? (r.family == .ipv6 ? PolicyTestRunner.labServerAddress6 : PolicyTestRunner.labServerAddress)
    }

    @Option(name: .customLong("after"), help: ArgumentHelp("Request fixtures the server saw first, in order (repeatable): a TFTP or HTTP request is explained with what the same client's DHCP request taught the server, as `serve` does.", valueName: "file"))
    var earlier: [String] = []

    func run() throws {
        var configuration = try config.map(Configuration.load(path:)) ?? Configuration()
        if !policies.isEmpty { configuration.policies = policies.map { Configuration.Policy(file: $0) } }
        let fixture: Fixture
        var req: BootRequest
        do {
            fixture = try Fixture.load(from: URL(fileURLWithPath: request))
            req = try fixture.bootRequest()
        } catch {
            throw ExitMessage("bootpolicy explain: \(request): \(error)")
        }
        if req.serverAddress == nil { req.serverAddress = address(for: req) }
        print("request \(fixture.name)\(fixture.origin.map { " (\($0))" } ?? "")")
        for line in Self.describe(req) { print("  \(line)") }

        var logger = Logger(label: "bootpolicy.explain")
        logger.logLevel = .warning
        let engine: PolicyEngine
        let directory = ClientDirectory(logger: logger)
        do {
            engine = try PolicySetup.offlineEngine(
                from: configuration, stateStore: directory.state,
                // The server's own key when readable, so a URL shown here is one it accepts.
                scriptTokens: (try? ScriptKey.setup(from: configuration, create: false))?.tokens ?? .random(), logger: logger)
        } catch {
            throw ExitMessage("bootpolicy explain: \(error)")
        }
        // The same pipeline as `serve`: earlier requests teach it the client's facts and scripts.
        let pipeline = BootPipeline(chain: engine, directory: directory, logger: logger)
        for path in earlier {
            do {
                var seen = try Fixture.load(from: URL(fileURLWithPath: path)).bootRequest()
                if seen.serverAddress == nil { seen.serverAddress = address(for: seen) }
                let decision = pipeline.decide(seen)
                print("after \(URL(fileURLWithPath: path).lastPathComponent): \(seen.kind.rawValue) \(seen.mac), \(decision.map { "decided by \($0.policy ?? "?")" } ?? "no decision")")
            } catch {
                throw ExitMessage("bootpolicy explain: --after \(path): \(error)")
            }
        }
        if req.kind != .dhcp, let facts = directory.dhcpFacts(mac: req.mac) {
            print("learnt from its DHCP request: arch \(facts.arch ?? "-"), firmware \(facts.firmware.rawValue)\(facts.isIPXE ? ", iPXE" : "")")
        }
        let (decision, steps) = pipeline.decideTraced(req)
        print("chain (\(req.kind.rawValue) hook)")
        let width = max(14, engine.chain.policies.map(\.name.count).max() ?? 0)
        func pad(_ name: String) -> String { name + String(repeating: " ", count: max(0, width - name.count)) }
        for step in steps {
            print("  \(pad(step.policy)) \(Self.describe(step.outcome)) (\(String(format: "%.1f", Double(step.duration) / 1000)) us)")
        }
        for policy in engine.chain.policies.dropFirst(steps.count) {
            print("  \(pad(policy.name)) not reached")
        }
        // A failed policy is skipped by `serve` too, so the decision below is what the machine
        // would get; the exit status still says that something is broken.
        let failed = steps.filter {
            switch $0.outcome {
            case .error, .budgetExceeded, .memoryExceeded: return true
            default: return false
            }
        }
        defer {
            if !failed.isEmpty {
                FileHandle.standardError.write(Data("bootpolicy explain: \(failed.count == 1 ? "a policy" : "\(failed.count) policies") failed (\(failed.map(\.policy).joined(separator: ", "))); serve would skip \(failed.count == 1 ? "it" : "them") as shown\n".utf8))
            }
        }
        guard let decision else {
            print("decision: none (no policy decided; the server stays silent)")
            if !failed.isEmpty { throw ExitCode(1) }
            return
        }
        print("decision by \(decision.policy ?? "?")")
        for line in Self.describe(decision) { print("  \(line)") }
        if req.kind == .dhcp, let lines = ReplyPreview.lines(for: fixture, request: req, decision: decision, serverAddress: address(for: req)) {
            print("reply")
            for line in lines { print("  \(line)") }
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    static func describe(_ r: BootRequest) -> [String] {
        var out = ["kind \(r.kind.rawValue)  mac \(r.mac.isEmpty ? "-" : r.mac)"]
        if let t = r.messageType { out.append("message \(t)\(r.xid.map { String(format: "  xid 0x%08x", $0) } ?? "")\(r.serverPort.map { "  port \($0)" } ?? "")") }
        out.append("firmware \(r.firmware.rawValue)  arch \(r.arch ?? "-")\(r.archCode.map { " (\($0))" } ?? "")  ipxe \(r.isIPXE)")
        if let v = r.vendorClass { out.append("vendor class \(v)") }
        if !r.userClass.isEmpty { out.append("user class \(r.userClass.joined(separator: ", "))") }
        if !r.ipxeFeatures.isEmpty { out.append("ipxe features \(r.ipxeFeatures.keys.sorted().joined(separator: " "))") }
        if let u = r.uuid { out.append("uuid \(u)") }
        if let h = r.hostname { out.append("hostname \(h)") }
        if let relay = r.relay { out.append("relay giaddr \(relay.giaddr) circuit \(relay.circuitID ?? "-") remote \(relay.remoteID ?? "-")") }
        if let p = r.path { out.append("path \(p)") }
        if !r.query.isEmpty { out.append("query \(r.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&"))") }
        if !r.options.isEmpty { out.append("options \(r.options.keys.sorted().map(String.init).joined(separator: " "))") }
        return out
    }

    /// The outcome as the journal words it, the deciding step in capitals so it stands out.
    static func describe(_ o: PolicyStep.Outcome) -> String {
        o == .decided ? "DECIDED" : o.text
    }

    static func describe(_ d: BootDecision) -> [String] {
        var out: [String] = []
        if d.ignore { out.append("ignore (stay silent)") }
        if let v = d.filename { out.append("filename \(v)") }
        if let v = d.nextServer { out.append("next_server \(v)") }
        if let v = d.serverName { out.append("server_name \(v)") }
        if !d.options.isEmpty { out.append("options \(d.options.keys.sorted().map(String.init).joined(separator: " "))") }
        if let v = d.path { out.append("path \(v)") }
        if let v = d.refuse { out.append("refuse \(v)") }
        if let v = d.content { out.append("content \(v.count) bytes") }
        if let v = d.note { out.append("note \(v)") }
        if let s = d.ipxeScript {
            out.append("ipxe_script:")
            out += s.split(separator: "\n", omittingEmptySubsequences: false).map { "  | \($0)" }
        }
        return out
    }
}
