import Foundation
import Testing

/// `bootpolicy check` runs every hook on recorded and made-up requests: mistakes that only show
/// when a hook runs are reported with the line that made them, and a request value that can
/// write its own iPXE script line is warned about.
@Suite struct CheckExerciseTests {
    func check(_ policy: String, _ extra: [String] = []) throws -> (status: Int32, text: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("p.lua").path
        try policy.write(toFile: path, atomically: true, encoding: .utf8)
        let p = ServerProcess(["check", "--policy", path] + extra)
        let status = try p.runToEnd(timeout: 60)
        return (status, p.text)
    }

    @Test func runtimeMistakesAreFoundBeforeARackMeetsThem() throws {
        let r = try check("""
            return {
              dhcp = function(req)
                if req.arch == "efi-arm64" then return { filename = req.options[9999].x } end
                if req.firmware == "uefi" then
                  return { filenme = "ipxe.efi" }
                end
              end,
              tftp = function(req)
                if req.path == "ipxe.efi" then while true do end end
              end,
            }
            """)
        #expect(r.status == 1, "\(r.text)")
        #expect(r.text.contains("p.lua:5: unknown decision field 'filenme'"), "\(r.text)")
        #expect(r.text.contains("p.lua:3: attempt to index a nil value"), "\(r.text)")
        #expect(r.text.contains("policy exceeded its budget") && r.text.contains("tftp hook, on synthetic TFTP ipxe.efi"), "\(r.text)")
        #expect(r.text.contains("FAIL "), "\(r.text)")
        // --no-run: only loading, as before.
        let loadOnly = try check("return { dhcp = function(req) return { filenme = 1 } end }\n", ["--no-run"])
        #expect(loadOnly.status == 0, "\(loadOnly.text)")
    }

    @Test func aRequestValueThatCanWriteScriptLinesIsWarnedAbout() throws {
        let raw = try check("""
            return { http = function(req)
              local s = ipxe.script()
              s:raw("echo hello " .. (req.query.name or "x"))
              return { ipxe_script = s }
            end }
            """)
        #expect(raw.status == 0, "a warning, not a failure: \(raw.text)")
        #expect(raw.text.contains("warning: p: a line break in a request value"), "\(raw.text)")
        let quoted = try check("""
            return { http = function(req)
              local s = ipxe.script()
              s:echo("hello " .. (req.query.name or "x"))
              s:line("chain", "http://x/" .. (req.hostname or "h"))
              return { ipxe_script = s }
            end }
            """)
        #expect(quoted.status == 0 && !quoted.text.contains("warning"), "\(quoted.text)")
    }

    @Test func theShippedPoliciesPassWithEveryHookRun() throws {
        let p = ServerProcess(["check", "--policy", "arch-aware", "--policy", "default"])
        #expect(try p.runToEnd(timeout: 60) == 0, "\(p.text)")
        #expect(p.text.contains("arch-aware.lua (dhcp, http run on"), "\(p.text)")
        #expect(!p.text.contains("warning"), "\(p.text)")
    }
}
