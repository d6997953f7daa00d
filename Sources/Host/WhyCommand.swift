import ArgumentParser
import Clients
import Foundation
import Protocols

/// `bootpolicy why MAC`: a machine's decisions from the journal, each with the chain version
/// that made it and what every policy said.
struct WhyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "why",
        abstract: "Show a machine's journaled decisions: when, the chain version, what each policy said, the decision and the reply.",
        discussion: """
            The journal is read from --journal FILE, else from the config's (journal.path, or the \
            file beside a SQLite state file), else from a running server's control API \
            (--server URL; a read token with --token-file when it has tokens). Exit 1 when the \
            machine has no journaled decision in the window.
            """
    )

    @Argument(help: ArgumentHelp("The machine's MAC address (any usual spelling).", valueName: "mac"))
    var mac: String

    @Option(help: ArgumentHelp("Only decisions from this time on: ISO 8601 (2026-12-01T10:00:00Z) or an age (90s, 30m, 12h, 7d).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("The decision journal (a SQLite file).", valueName: "file"))
    var journal: String?

    @Option(help: ArgumentHelp("A config file: its journal is read.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("A running server's base URL, to ask its control API instead of a file.", valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("A file holding a read token for --server.", valueName: "file"))
    var tokenFile: String?

    @Option(help: ArgumentHelp("At most this many decisions (the newest).", valueName: "n"))
    var limit: Int = 50

    @Flag(help: "Print the decisions as JSON.")
    var json = false

    /// ISO 8601, or an age before now: `90s`, `30m`, `12h`, `7d`.
    static func parseTime(_ text: String, now: Date = Date()) -> Date? {
        if let t = ControlAPI.isoFormatter.date(from: text) { return t }
        guard let unit = text.last, let n = Double(text.dropLast()), n >= 0, n.isFinite else { return nil }
        let seconds: Double
        switch unit {
        case "s": seconds = n
        case "m": seconds = n * 60
        case "h": seconds = n * 3600
        case "d": seconds = n * 86_400
        default: return nil
        }
        return now.addingTimeInterval(-seconds)
    }

    func run() throws {
        guard let normalized = MACAddress.normalize(mac) else { throw ExitMessage("bootpolicy why: not a MAC address: \(mac)") }
        guard (1...1000).contains(limit) else { throw ExitMessage("bootpolicy why: --limit must be from 1 to 1000") }
        var sinceDate: Date?
        if let since {
            guard let t = Self.parseTime(since) else {
                throw ExitMessage("bootpolicy why: --since must be an ISO 8601 time or an age such as 12h, not '\(since)'")
            }
            sinceDate = t
        }
        let (entries, origin) = try read(mac: normalized, since: sinceDate)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
        } else {
            for e in entries { print(Self.describe(e)) }
        }
        if entries.isEmpty {
            FileHandle.standardError.write(Data("bootpolicy why: no decisions for \(normalized)\(since.map { " since \($0)" } ?? "") in \(origin)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func read(mac: String, since: Date?) throws -> ([JournalEntry], String) {
        if let server {
            return (try fetch(mac: mac, since: since, server: server), server)
        }
        var path = journal
        if path == nil, let config {
            let c: Configuration
            do { c = try Configuration.load(path: config) } catch { throw ExitMessage("bootpolicy why: \(error)") }
            guard c.journal.enabled else { throw ExitMessage("bootpolicy why: \(config) turns the journal off (journal.enabled: false)") }
            guard let p = JournalSetup.path(for: c) else {
                throw ExitMessage("bootpolicy why: the journal of \(config) is in the server's memory; ask the server (--server URL)")
            }
            path = p
        }
        guard let path else { throw ExitMessage("bootpolicy why: say where the journal is: --journal FILE, --config FILE or --server URL") }
        do {
            let store = try SQLiteJournalStore(path: path, readOnly: true)
            defer { store.close() }
            return (try store.entries(mac: mac, since: since, limit: limit), path)
        } catch {
            throw ExitMessage("bootpolicy why: \(error)")
        }
    }

    private func fetch(mac: String, since: Date?, server: String) throws -> [JournalEntry] {
        var query = "limit=\(limit)"
        if let since { query += "&since=" + ControlAPI.isoFormatter.string(from: since).replacingOccurrences(of: "+", with: "%2B") }
        let response: APIClient.Response
        do {
            let token = try tokenFile.map(StateCommand.Connection.token(inFile:))
            response = try APIClient(server: server, token: token).send(.GET, "/api/v1/clients/\(mac)/decisions?\(query)", body: nil)
        } catch let error as ExitMessage {
            throw error
        } catch {
            throw ExitMessage("bootpolicy why: \(error)")
        }
        guard response.status == 200 else {
            throw ExitMessage("bootpolicy why: \(server): HTTP \(response.status): \(response.body.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let body = Array(response.body.utf8)
        struct Page: Decodable { var decisions: [JournalEntry] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(Page.self, from: Data(body)).decisions
        } catch {
            throw ExitMessage("bootpolicy why: \(server): not a decisions page: \(error)")
        }
    }

    static func describe(_ e: JournalEntry) -> String {
        var lines = ["\(ControlAPI.isoFormatter.string(from: e.time))  \(e.kind.rawValue) \(e.summary)  chain \(e.version)"]
        let width = max(14, e.steps.map(\.policy.count).max() ?? 0)
        for s in e.steps {
            lines.append("  \(s.policy.padding(toLength: width, withPad: " ", startingAt: 0)) \(s.outcome) (\(String(format: "%.1f", s.micros)) us)")
        }
        if let d = e.decision {
            lines.append("  decision by \(d.policy ?? "?")")
            lines += ExplainCommand.describe(d).filter { !$0.hasPrefix("  |") && $0 != "ipxe_script:" }.map { "    " + $0 }
            if let s = d.ipxeScript { lines.append("    ipxe_script \(DecisionComparison.scriptSummary(s))") }
        } else {
            lines.append("  decision: none (no policy decided)")
        }
        lines += e.reply.map { "  reply: " + $0 }
        return lines.joined(separator: "\n")
    }
}
