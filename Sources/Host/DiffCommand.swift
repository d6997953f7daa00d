import ArgumentParser
import Clients
import Foundation
import Logging
import LuaBridge
import Protocols

/// `bootpolicy diff`: what a candidate chain would answer differently, machine by machine,
/// over recorded requests (fixtures) or the decision journal's real ones.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Replay requests through two chains and print, machine by machine, every answer that changes.",
        discussion: """
            A and B are each a policy file, a shipped policy name (default, arch-aware), several of \
            them joined by commas (a chain), or a config file (.yaml/.yml: its policies, their \
            config and its data files). Each PATH is a request fixture, a folder searched for \
            *.json fixtures, or a decision journal (the SQLite file serve writes, by default \
            beside its state file). Requests are replayed in order, each machine's DHCP request \
            before its file requests, through the same pipeline as serve; each side keeps its own \
            per-client state.
            Exit status: 0 when no answer changes, 1 when one does, 2 on an error.
            """
    )

    @Option(name: .customLong("from"), help: ArgumentHelp("The running chain: policy file(s), shipped name(s) or a config file.", valueName: "A"))
    var from: String

    @Option(name: .customLong("to"), help: ArgumentHelp("The candidate chain, the same way.", valueName: "B"))
    var to: String

    @Argument(help: ArgumentHelp("Fixtures, folders of fixtures, or decision journals.", valueName: "path"))
    var paths: [String]

    @Flag(help: "Print one JSON document (for CI) instead of text.")
    var json = false

    @Option(name: .customLong("server-address"), help: ArgumentHelp("The server address requests are taken to have reached (fixtures that carry none; default 192.168.77.2, fd77::2 for DHCPv6 ones).", valueName: "address"))
    var serverAddressOption: String?

    @Option(help: ArgumentHelp("At most this many entries from each journal (the newest).", valueName: "n"))
    var journalLimit: Int = 1_000_000

    struct Change: Encodable {
        var mac: String
        var request: String
        var kind: String
        var summary: String
        var differences: [DecisionDifference]
        /// Both scripts' lines when the script changed (the text output shows the changed lines).
        var scripts: [String]?
    }

    struct Report: Encodable {
        var from: String
        var to: String
        var fromVersion: String
        var toVersion: String
        var requests: Int
        var machines: Int
        var changedMachines: Int
        /// Machines whose answers change, per field.
        var fields: [String: Int]
        var changes: [Change]
        var errors: [String]
        enum CodingKeys: String, CodingKey {
            case from, to, fromVersion = "from_version", toVersion = "to_version", requests, machines
            case changedMachines = "changed_machines", fields, changes, errors
        }
    }

    func run() throws {
        do {
            let report = try compare()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                printText(report)
            }
            if !report.errors.isEmpty { throw ExitCode(2) }
            if report.changedMachines > 0 { throw ExitCode(1) }
        } catch let error as ExitMessage {
            FileHandle.standardError.write(Data("\(error.description)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// One side: a pipeline of its own over memory state.
    struct Side {
        var engine: PolicyEngine
        var pipeline: BootPipeline
    }

    static func side(_ spec: String, tokens: ScriptTokens, logger: Logger) throws -> Side {
        var configuration: Configuration
        if spec.hasSuffix(".yaml") || spec.hasSuffix(".yml") {
            do { configuration = try Configuration.load(path: spec) } catch { throw ExitMessage("bootpolicy diff: \(spec): \(error)") }
        } else {
            configuration = Configuration()
            configuration.policies = spec.split(separator: ",").map { Configuration.Policy(file: String($0)) }
        }
        do {
            let directory = ClientDirectory(logger: logger)
            let engine = try PolicySetup.offlineEngine(from: configuration, stateStore: directory.state, scriptTokens: tokens,
                                                       logger: logger)
            return Side(engine: engine, pipeline: BootPipeline(chain: engine, directory: directory, logger: logger))
        } catch {
            throw ExitMessage("bootpolicy diff: \(spec): \(error)")
        }
    }

    /// A request to replay, with where it came from.
    struct Replay {
        var name: String
        var request: BootRequest
        var time: Date?
    }

    func compare() throws -> Report {
        var logger = Logger(label: "bootpolicy.diff")
        logger.logLevel = .critical
        // One key for both sides, so that URLs carrying script tokens compare equal.
        let tokens = ScriptTokens.forPolicyTests
        let a = try Self.side(from, tokens: tokens, logger: logger)
        let b = try Self.side(to, tokens: tokens, logger: logger)
        var errors: [String] = []
        let replays = try gather(errors: &errors)
        var changes: [Change] = []
        var machines = Set<String>()
        var changed: [String: Set<String>] = [:]
        for replay in replays {
            var req = replay.request
            if req.serverAddress == nil {
                req.serverAddress = serverAddressOption ?? (req.family == .ipv6 ? PolicyTestRunner.labServerAddress6 : PolicyTestRunner.labServerAddress)
            }
            machines.insert(req.mac.isEmpty ? "(no MAC)" : req.mac)
            let da = a.pipeline.decide(req)
            let db = b.pipeline.decide(req)
            let differences = DecisionComparison.differences(kind: req.kind, da, db)
            guard !differences.isEmpty else { continue }
            let mac = req.mac.isEmpty ? "(no MAC)" : req.mac
            for d in differences { changed[d.field, default: []].insert(mac) }
            var scripts: [String]?
            if differences.contains(where: { $0.field == "script" }) {
                scripts = Self.lineDiff(da?.ipxeScript ?? "", db?.ipxeScript ?? "")
            }
            changes.append(Change(mac: mac, request: replay.name, kind: req.kind.rawValue, summary: Self.summary(req, at: replay.time),
                                  differences: differences, scripts: scripts))
        }
        let changedMachines = Set(changes.map(\.mac))
        return Report(from: from, to: to, fromVersion: a.engine.chain.version, toVersion: b.engine.chain.version,
                      requests: replays.count, machines: machines.count, changedMachines: changedMachines.count,
                      fields: changed.mapValues(\.count), changes: changes, errors: errors)
    }

    static func summary(_ r: BootRequest, at time: Date?) -> String {
        var s = r.kind.rawValue
        if let t = r.messageType { s += " \(t)" }
        if let a = r.arch { s += " \(a)" }
        if let p = r.path { s += " \(p)" }
        if let time { s += " at \(ControlAPI.isoFormatter.string(from: time))" }
        return s
    }

    /// Every request in `paths`, in replay order: files in name order (a folder's, sorted),
    /// each journal's entries oldest first. Unreadable files are errors (exit 2), listed.
    func gather(errors: inout [String]) throws -> [Replay] {
        var out: [Replay] = []
        let fm = FileManager.default
        for path in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw ExitMessage("bootpolicy diff: \(path): no such file or directory") }
            if isDir.boolValue {
                guard let walker = fm.enumerator(atPath: path) else { continue }
                let files = walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }.sorted()
                for file in files { load(fixture: (path as NSString).appendingPathComponent(file), into: &out, errors: &errors) }
            } else if Self.isSQLite(path) {
                do {
                    let store = try SQLiteJournalStore(path: path, readOnly: true)
                    defer { store.close() }
                    for entry in try store.entries(mac: nil, since: nil, limit: journalLimit) {
                        do {
                            out.append(Replay(name: "\((path as NSString).lastPathComponent)#\(entry.id ?? 0)",
                                              request: try entry.request.bootRequest(), time: entry.time))
                        } catch {
                            errors.append("\(path)#\(entry.id ?? 0): \(error)")
                        }
                    }
                } catch {
                    throw ExitMessage("bootpolicy diff: \(path): \(error)")
                }
            } else {
                load(fixture: path, into: &out, errors: &errors)
            }
        }
        // Fixtures: DHCP requests first (a file request is answered with what the same
        // machine's DHCP request taught the server); a journal is already in time order.
        let dhcp = out.filter { $0.time != nil || $0.request.kind == .dhcp }
        let files = out.filter { $0.time == nil && $0.request.kind != .dhcp }
        return dhcp + files
    }

    private func load(fixture path: String, into out: inout [Replay], errors: inout [String]) {
        do {
            let fixture = try Fixture.load(from: URL(fileURLWithPath: path))
            out.append(Replay(name: (path as NSString).lastPathComponent, request: try fixture.bootRequest(), time: nil))
        } catch {
            errors.append("\(path): \(error)")
        }
    }

    static func isSQLite(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 16)) ?? Data()
        return head == Data("SQLite format 3\0".utf8)
    }

    /// The lines only one script has, `-` for A's and `+` for B's, in order.
    static func lineDiff(_ a: String, _ b: String) -> [String] {
        let la = a.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let lb = b.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Longest common subsequence; scripts are short.
        guard la.count * lb.count <= 4_000_000 else { return ["(scripts too long to compare line by line)"] }
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: lb.count + 1), count: la.count + 1)
        for i in stride(from: la.count - 1, through: 0, by: -1) {
            for j in stride(from: lb.count - 1, through: 0, by: -1) {
                lcs[i][j] = la[i] == lb[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var out: [String] = []
        var i = 0, j = 0
        while i < la.count || j < lb.count {
            if i < la.count, j < lb.count, la[i] == lb[j] { i += 1; j += 1 }
            else if j < lb.count, i == la.count || lcs[i][j + 1] >= lcs[i + 1][j] { out.append("+ " + lb[j]); j += 1 }
            else { out.append("- " + la[i]); i += 1 }
        }
        return out
    }

    func printText(_ r: Report) {
        print("from \(r.from) (chain \(r.fromVersion))")
        print("to   \(r.to) (chain \(r.toVersion))")
        var byMachine: [String: [Change]] = [:]
        var order: [String] = []
        for c in r.changes {
            if byMachine[c.mac] == nil { order.append(c.mac) }
            byMachine[c.mac, default: []].append(c)
        }
        for mac in order {
            print("")
            print(mac)
            for c in byMachine[mac]! {
                print("  \(c.request): \(c.summary)")
                for d in c.differences {
                    print("    \(d.field): \(d.from)")
                    print("    \(String(repeating: " ", count: d.field.count))  -> \(d.to)")
                }
                for line in c.scripts ?? [] { print("      \(line)") }
            }
        }
        for e in r.errors { print("error: \(e)") }
        print("")
        let fields = r.fields.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        if r.changedMachines == 0 {
            print("no answer changes: \(r.machines) machine\(r.machines == 1 ? "" : "s"), \(r.requests) request\(r.requests == 1 ? "" : "s")")
        } else {
            print("\(r.changedMachines) of \(r.machines) machines change: \(fields)")
        }
    }
}
