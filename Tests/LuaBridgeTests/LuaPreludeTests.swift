import Foundation
import Protocols
import Testing
import TestSupport
@testable import LuaBridge

/// The Lua-side library (mac, ipxe, test API) runs its own assertions in library_test.lua.
@Suite struct LuaPreludeTests {
    /// Runs a Lua test file of Policies/tests: it loads, holds `count` tests, and all pass.
    static func runLuaTests(_ file: String, count: Int) {
        let runner = PolicyTestRunner(logger: TestPolicies.logger, loadFixture: PolicyTestRunnerTests.loader)
        let r = runner.run(file: TestPolicies.dir.appendingPathComponent("tests/" + file))
        #expect(r.error == nil, "\(r.error ?? "")")
        #expect(r.tests.count == count)
        for t in r.tests { #expect(t.passed, "\(t.name): \(t.message ?? "")") }
    }

    @Test func libraryTestsPass() { Self.runLuaTests("library_test.lua", count: 5) }
}

/// The GRUB config builder against GRUB's own parser (grub-script-check, Debian's grub-common)
/// and a POSIX shell, which reads single quotes and "${var}" exactly as GRUB's lexer does: a
/// hostile value must come back as the one argument it was.
@Suite struct GrubBuilderTests {
    static let grubCheck = Requirement.tool("grub-script-check", install: "apt-get install grub-common")

    @Test func libraryTestsPass() { LuaPreludeTests.runLuaTests("grub_test.lua", count: 4) }

    static let hostile = ["plain", "it's", "'", "''", "\\", "\\'", "$root", "${prefix}/x", "`reboot`", "a; reboot",
                          "} menuentry 'x' {", "--class", "-", "#comment", "\"dq\"", "tab\there", "  spaces  ", "",
                          "ü ünïcödé", "&& || |", "(tftp,10.0.0.1)/grub.cfg"]

    /// Renders `echo` of every hostile value through a policy's http hook.
    func rendered() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-grub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let values = Self.hostile.map { v in "\"" + v.unicodeScalars.map { s in
            s.value < 0x80 && s != "\"" && s != "\\" && s.value >= 0x20 ? String(s) : "\\u{\(String(s.value, radix: 16))}" }.joined() + "\"" }
        let source = """
            local values = { \(values.joined(separator: ", ")) }
            return { http = function(req)
              local c = grub.config()
              c:menuentry(values[11], { id = values[2] }, function(e)
                for _, v in ipairs(values) do e:echo(v) end
                e:linux("/vmlinuz", table.unpack(values))
              end)
              return { content = c:render() }
            end }
            """
        let path = dir.appendingPathComponent("p.lua").path
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        let chain = try PolicyChain(specs: [PolicySpec(path: path)], limits: PolicyLimits(states: 1), logger: TestPolicies.logger)
        let decision = chain.decide(BootRequest(kind: .http, mac: "52:54:00:aa:00:01", path: "/grub.cfg"))
        return String(decoding: try #require(decision?.content), as: UTF8.self)
    }

    @Test(.requires(Self.grubCheck)) func grubParsesItAndAShellReadsBackEveryValue() throws {
        let text = try rendered()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("bp-grub-\(UUID().uuidString).cfg")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let check = try Spawn.run(Requirement.path(of: "grub-script-check")!, [file.path], timeout: 30)
        #expect(check.status == 0, "grub-script-check: \(check.output)\n\(text)")

        // Each `echo 'v'` line, run by sh as printf, prints v back: one argument, unexpanded.
        let echoes = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("echo ") }
        #expect(echoes.count == Self.hostile.count)
        for (line, value) in zip(echoes, Self.hostile) {
            let script = "set -f; for a in " + line.dropFirst(5) + "; do printf '[%s]' \"$a\"; done"
            let out = try Spawn.run("/bin/sh", ["-c", script], timeout: 10)
            #expect(out.output == "[\(value)]", "\(line) read back as \(out.output), not [\(value)]")
        }
        // The linux line: the path and then exactly the values, in order.
        let linux = try #require(text.split(separator: "\n").first { $0.contains("linux '/vmlinuz'") })
        let out = try Spawn.run("/bin/sh", ["-c", "set -f; for a in " + linux.trimmingCharacters(in: .whitespaces).dropFirst(6) + "; do printf '[%s]' \"$a\"; done"], timeout: 10)
        #expect(out.output == "[/vmlinuz]" + Self.hostile.map { "[\($0)]" }.joined(), "\(out.output)")
    }
}
