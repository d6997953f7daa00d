import ArgumentParser
import Foundation
import Logging
import LuaBridge
import Protocols

/// `bootpolicy check`: load the config and every policy, report every problem, change nothing.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Load the config and the policies and report every error with file:line; exit 1 on any."
    )

    @Option(help: ArgumentHelp("YAML config file.", valueName: "file"))
    var config: String?

    @Option(name: .customLong("policy"), help: ArgumentHelp("Policy files or shipped names (repeatable; replaces the config's list).", valueName: "file"))
    var policies: [String] = []

    @Option(name: .customLong("fixtures"), help: ArgumentHelp("A folder of request fixtures (bootpolicy record/import) every hook is run on, besides the shipped ones (repeatable).", valueName: "dir"))
    var fixtureDirs: [String] = []

    @Flag(name: .customLong("no-run"), help: "Only load: do not run the hooks on recorded and made-up requests.")
    var noRun = false

    func run() throws {
        var problems: [String] = []
        var configuration = Configuration()
        if let config {
            do { configuration = try Configuration.load(path: config) } catch { problems.append("\(error)") }
        }
        if !policies.isEmpty { configuration.policies = policies.map { Configuration.Policy(file: $0) } }
        for dir in [configuration.tftp.root, configuration.http.root].compactMap({ $0 }) {
            var isDir: ObjCBool = false
            if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) || !isDir.boolValue {
                problems.append("\(dir): not a directory")
            }
        }
        // The HTTPS identity, loaded as serve loads it (expiry, key and certificate a pair).
        if let tls = configuration.http.tls {
            do {
                print("ok    http.tls: \(try TLSIdentity(certificate: tls.certificate, key: tls.key).summary)")
            } catch {
                problems.append("\(error)")
            }
        }
        // Full DHCP's ranges and reservations, as serve checks them at start.
        var guessed: [String] = []
        if !configuration.dhcp.ranges.isEmpty {
            do {
                let plan = try ServerFactory.dhcpPlan(configuration.dhcp, networks: ServerFactory.localNetworks(), guessing: true, guessed: &guessed)
                print("ok    dhcp.ranges: \(plan.ranges.map { "\($0) (\($0.subnet))" }.joined(separator: ", "))"
                      + (plan.reservations.isEmpty ? "" : "; \(plan.reservations.count) reservations"))
            } catch {
                problems.append("\(error)")
            }
        }
        if !configuration.dhcp6.ranges.isEmpty {
            do {
                let ranges = try ServerFactory.dhcp6Ranges(configuration.dhcp6)
                print("ok    dhcp6.ranges: \(ranges.map { "\($0) (/\($0.prefixLength), \($0.size) addresses)" }.joined(separator: ", "))")
            } catch {
                problems.append("\(error)")
            }
        }
        var data = PolicyData.empty
        do {
            data = try PolicySetup.data(from: configuration)
            for source in data.sources { print("ok    \(source.path) (data.\(source.name), \(data.entries[source.name] ?? 0) entries)") }
        } catch {
            problems.append("\(error)")
        }
        let server = PolicySetup.server(from: configuration, httpPort: nil)
        var logger = Logger(label: "bootpolicy.check")
        logger.logLevel = .error
        // Every hook runs on these (PolicyExercise): recorded requests and one made-up request
        // per kind of firmware.
        var requests: [(String, BootRequest)] = []
        if !noRun {
            let (recorded, unreadable) = PolicyExercise.fixtures(in: fixtureDirs)
            problems += unreadable
            requests = recorded + PolicyExercise.synthetic()
        }
        var warnings: [String] = guessed.map {
            "dhcp.ranges \($0): no interface here is in its network, so it was checked as a /24; serve needs an interface in it or START,END,NETMASK"
        }
        // Each policy alone first, so every broken file is reported, not only the first.
        var specs: [PolicySpec] = []
        let live = configuration.policies.isEmpty ? [Configuration.Policy(file: "default")] : configuration.policies
        var shadowCount = 0
        for (policy, isShadow) in live.map({ ($0, false) }) + configuration.shadow.map({ ($0, true) }) {
            var single = configuration
            single.policies = [policy]
            do {
                let spec = try PolicySetup.specs(from: single)
                if isShadow {
                    // A shadow policy is checked as hard as a live one: it runs on every request.
                    let chain = try PolicyChain(specs: spec, limits: PolicySetup.shadowLimits(from: configuration), logger: logger,
                                                data: data, server: server)
                    let findings = PolicyExercise.run(chain, requests: requests)
                    problems += findings.filter { !$0.warning }.map { "shadow: " + $0.message }
                    warnings += findings.filter(\.warning).map { "shadow: " + $0.message }
                    shadowCount += 1
                    print("\(findings.contains { !$0.warning } ? "FAIL " : "ok   ") \(spec[0].path) (shadow)")
                    continue
                }
                let chain = try PolicyChain(specs: spec, limits: PolicySetup.limits(from: configuration), logger: logger,
                                            data: data, server: server)
                specs += spec
                let findings = PolicyExercise.run(chain, requests: requests)
                problems += findings.filter { !$0.warning }.map(\.message)
                warnings += findings.filter(\.warning).map(\.message)
                let hooks = chain.policies.first?.hooks ?? []
                let ran = noRun || hooks.isEmpty ? "" : " (\(hooks.joined(separator: ", ")) run on \(requests.count) requests)"
                print("\(findings.contains { !$0.warning } ? "FAIL " : "ok   ") \(spec[0].path)\(ran)")
            } catch {
                problems.append("\(error)")
            }
        }
        for w in warnings { FileHandle.standardError.write(Data("bootpolicy check: warning: \(w)\n".utf8)) }
        if problems.isEmpty {
            print("check passed: \(specs.count) polic\(specs.count == 1 ? "y" : "ies") in the chain: \(specs.map(\.name).joined(separator: " -> "))"
                  + (shadowCount > 0 ? "; \(shadowCount) in the shadow chain" : ""))
            return
        }
        for p in problems where !p.isEmpty { FileHandle.standardError.write(Data("bootpolicy check: \(p)\n".utf8)) }
        throw ExitCode(1)
    }
}
