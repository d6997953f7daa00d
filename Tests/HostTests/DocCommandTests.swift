import Foundation
import Testing

/// The commands the docs show work as shown: every `bootpolicy ...` line in a code block of
/// README.md, policies/README.md and docs/*.md. One that can run here (check, explain, test on
/// files of this repository) is run from the repository root and must exit 0; any other
/// (serve on an interface, record, a state change on a server) must at least use only flags
/// its command knows. Every `fixtures/...` path the READMEs name must exist.
@Suite struct DocCommandTests {
    let root = ServerProcess.packageRoot

    struct Command {
        var file: String
        var line: Int
        var words: [String]
        var text: String { words.joined(separator: " ") }
    }

    func documents() throws -> [URL] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
            .filter { $0.hasSuffix(".md") }.sorted().map { root.appendingPathComponent("docs/\($0)") }
        return [root.appendingPathComponent("README.md"), root.appendingPathComponent("policies/README.md")] + docs
    }

    /// `bootpolicy` lines inside fenced blocks, continuation lines joined, comments dropped.
    func commands() throws -> [Command] {
        var out: [Command] = []
        for url in try documents() {
            let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
            var inFence = false
            var pending: (Int, String)?
            for (n, raw) in lines.enumerated() {
                if raw.hasPrefix("```") { inFence.toggle(); pending = nil; continue }
                guard inFence else { continue }
                var line = raw
                if let r = line.range(of: " #") { line = String(line[..<r.lowerBound]) }
                line = line.trimmingCharacters(in: .whitespaces)
                if let (start, text) = pending {
                    line = text + " " + line
                    pending = nil
                    if line.hasSuffix("\\") { pending = (start, String(line.dropLast())); continue }
                    out.append(Command(file: url.lastPathComponent, line: start, words: Self.split(line)))
                    continue
                }
                guard line.hasPrefix("bootpolicy ") else { continue }
                if line.hasSuffix("\\") { pending = (n + 1, String(line.dropLast())); continue }
                // A pipeline or substitution: the bootpolicy part only.
                if let bar = line.range(of: " | ") { line = String(line[..<bar.lowerBound]) }
                out.append(Command(file: url.lastPathComponent, line: n + 1, words: Self.split(line)))
            }
        }
        return out
    }

    static func split(_ s: String) -> [String] { s.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }

    static let runnable: Set<String> = ["check", "explain", "test"]
    static let subcommands: Set<String> = ["serve", "check", "explain", "test", "import", "record", "state", "leases", "diff", "why"]

    func help(_ path: [String]) throws -> String {
        let p = ServerProcess(path + ["--help"])
        _ = try p.runToEnd(timeout: 30)
        return p.text
    }

    @Test func everyDocumentedCommandRunsOrAtLeastParses() throws {
        let commands = try commands()
        #expect(commands.count >= 10, "found only \(commands.count) documented commands")
        var ran = 0
        var helps: [String: String] = [:]
        for c in commands {
            let args = Array(c.words.dropFirst())
            guard let sub = args.first, Self.subcommands.contains(sub) else {
                Issue.record("\(c.file):\(c.line): not a bootpolicy command: \(c.text)")
                continue
            }
            var path = [sub]
            if sub == "state" || sub == "leases", args.count > 1 { path.append(args[1]) }
            let operands = args.dropFirst(path.count).filter { !$0.hasPrefix("-") }
            let files = operands.filter { $0.contains("/") || $0.hasSuffix(".json") || $0.hasSuffix(".lua") || $0.hasSuffix(".yaml") }
            let placeholder = c.text.contains("...") || c.text.contains("<") || c.text.contains("$")
            if Self.runnable.contains(sub), !placeholder,
               files.allSatisfy({ FileManager.default.fileExists(atPath: root.appendingPathComponent($0).path) }) {
                let p = ServerProcess(args)
                p.process.currentDirectoryURL = root
                let status = try p.runToEnd(timeout: 120)
                #expect(status == 0, "\(c.file):\(c.line): `\(c.text)` exited \(status):\n\(p.text)")
                ran += 1
                continue
            }
            let key = path.joined(separator: " ")
            if helps[key] == nil { helps[key] = try help(path) }
            for flag in args where flag.hasPrefix("--") {
                let name = String(flag.split(separator: "=", maxSplits: 1)[0])
                #expect(helps[key]!.contains(name), "\(c.file):\(c.line): `bootpolicy \(key)` has no flag \(name): \(c.text)")
            }
        }
        // The README's test, explain and check lines at least: a test that ran nothing proves nothing.
        #expect(ran >= 2, "only \(ran) documented commands could run")
    }

    @Test func fixturePathsTheReadmesNameExist() throws {
        for url in [root.appendingPathComponent("README.md"), root.appendingPathComponent("policies/README.md")] {
            let text = try String(contentsOf: url, encoding: .utf8)
            let regex = try NSRegularExpression(pattern: #"fixtures/[A-Za-z0-9_./-]+\.json"#)
            let matches = regex.matches(in: text, range: NSRange(text.startIndex..., in: text))
            for m in matches {
                var path = String(text[Range(m.range, in: text)!])
                if path.hasPrefix("fixtures/mine/") { continue }
                path = path.replacingOccurrences(of: "../", with: "")
                #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path),
                        "\(url.lastPathComponent) names \(path), which does not exist")
            }
        }
    }
}
