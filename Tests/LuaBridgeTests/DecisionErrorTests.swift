import Foundation
import Protocols
import Testing
@testable import LuaBridge

/// A bad decision is reported at the line that wrote it, not at the hook's `function` line;
/// a boot file name no DHCP reply can carry is refused, not cut.
@Suite struct DecisionErrorTests {
    func outcome(_ source: String, kind: BootRequest.Kind = .dhcp) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-dec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("p.lua").path
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        let chain = try PolicyChain(specs: [PolicySpec(path: path)], limits: PolicyLimits(states: 1), logger: TestPolicies.logger)
        let (decision, steps) = chain.decideTraced(BootRequest(kind: kind, mac: "52:54:00:aa:00:01", path: "/x"))
        switch steps.last?.outcome {
        case .error(let m)?: return m
        default: return decision?.filename ?? "no decision"
        }
    }

    @Test func theLineThatWroteTheFieldIsNamed() throws {
        #expect(try outcome("""
            return { dhcp = function(req)
              local ok = true
              if not ok then return nil end
              return { filenme = "undionly.kpxe" }
            end }
            """).hasPrefix("p.lua:4: unknown decision field 'filenme'"))
        #expect(try outcome("""
            return {
              dhcp = function(req)
                local d = {}
                d.filename = 5  -- a number
                return d
              end,
            }
            """).hasPrefix("p.lua:4: decision.filename: expected string, got number"))
        #expect(try outcome("""
            return { dhcp = function(req)
              return {
                ["next_server"] = "not an address",
              }
            end }
            """).hasPrefix("p.lua:3: decision.next_server: expected an IPv4 or IPv6 address"))
        // Not found in the text (built from a variable name): the function line, as before.
        #expect(try outcome("""
            return { dhcp = function(req)
              local k = "file" .. "nme"
              return { [k] = "x" }
            end }
            """).hasPrefix("p.lua:1: unknown decision field 'filenme'"))
    }

    @Test func bootFileNamesPast255BytesAreRefused() throws {
        let long = String(repeating: "x", count: 256)
        let m = try outcome("return { dhcp = function(req)\n  return { filename = \"\(long)\" }\nend }\n")
        #expect(m == "p.lua:2: decision.filename: 256 bytes; a DHCP reply carries at most 255 (option 67; the BOOTP file field holds 127)", "\(m)")
        let ok = String(repeating: "y", count: 255)
        #expect(try outcome("return { dhcp = function(req) return { filename = \"\(ok)\" } end }\n") == ok)
    }

    @Test func quotingErrorsNameThePolicyLine() throws {
        for (call, line) in [("s:echo(\"${x}\")", 3), ("s:kernel(\"http://a/${x}\")", 3), ("s:set(\"v\", \"${x} y\")", 3),
                             ("s:line(\"chain\", \"${x}\")", 3), ("local t = \"a ${x}\" .. ipxe.var(\"y\")", 3)] {
            let m = try outcome("return { dhcp = function(req)\n  local s = ipxe.script()\n  \(call)\n  return { filename = \"f\", ipxe_script = s }\nend }\n")
            #expect(m.hasPrefix("p.lua:\(line): ipxe.quote:"), "\(call): \(m)")
        }
    }
}
