import Foundation
import Testing

/// `bootpolicy diff`: the answers that change between two chains, machine by machine, with the
/// exit status a CI job can gate on.
@Suite struct DiffCommandTests {
    let root = ServerProcess.packageRoot
    var fixtures: String { root.appendingPathComponent("fixtures/requests").path }

    func run(_ args: [String]) throws -> (status: Int32, output: String) {
        try runTool(ServerProcess.binary.path, args, timeout: 60)
    }

    @Test func aPolicyAgainstItselfChangesNothing() throws {
        for policy in ["default", "arch-aware"] {
            let r = try run(["diff", "--from", policy, "--to", policy, fixtures])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.output.contains("no answer changes: 6 machines, 15 requests"), "\(r.output)")
        }
    }

    /// Every shipped fixture: default against arch-aware changes exactly the UEFI machines
    /// (PXE: another file; HTTP boot: an answer where default is silent), not the BIOS ones.
    @Test func defaultAgainstArchAwareNamesTheUEFIMachines() throws {
        let text = try run(["diff", "--from", "default", "--to", "arch-aware", fixtures])
        #expect(text.status == 1, "\(text.output)")
        #expect(text.output.contains("5 of 6 machines change: 4 filename, 2 silence"), "\(text.output)")
        #expect(text.output.contains("undionly.kpxe\n              -> ipxe.efi"), "\(text.output)")

        let json = try run(["diff", "--from", "default", "--to", "arch-aware", "--json", fixtures])
        #expect(json.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
        #expect(report["machines"] as? Int == 6)
        #expect(report["changed_machines"] as? Int == 5)
        #expect(report["fields"] as? [String: Int] == ["filename": 4, "silence": 2])
        let changes = try #require(report["changes"] as? [[String: Any]])
        let macs = Set(changes.compactMap { $0["mac"] as? String })
        #expect(macs.contains("52:54:00:77:00:02") && macs.contains("52:54:00:77:00:03"), "\(macs)")
        #expect(!macs.contains("52:54:00:12:34:56"), "the BIOS machine does not change")
        // The DHCPv6 fixtures: OVMF PXEv6 gets ipxe.efi, iPXE its script on our IPv6 address.
        #expect(text.output.contains("ovmf-pxe6-solicit.json: dhcp solicit efi-x64\n    filename: undionly.kpxe\n              -> ipxe.efi"), "\(text.output)")
        #expect(text.output.contains("-> http://[fd77::2]:8080/boot.ipxe?mac=52-54-00-79-00-01&arch=bios"), "\(text.output)")
        #expect((report["from_version"] as? String)?.count == 12)
    }

    /// A chain given as a config file, with a policy's config: the change is the config's.
    @Test func aConfigFileIsAChainWithItsConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-diff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("candidate.yaml")
        try "policies:\n  - file: default\n    config: { filename: pxelinux.0 }\n".write(to: config, atomically: true, encoding: .utf8)
        let r = try run(["diff", "--from", "default", "--to", config.path, fixtures])
        #expect(r.status == 1, "\(r.output)")
        #expect(r.output.contains("-> pxelinux.0"), "\(r.output)")
        #expect(r.output.contains("to   \(config.path)"), "\(r.output)")
    }

    @Test func errorsExitTwoAndSayWhy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-diff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = try run(["diff", "--from", "default", "--to", "default", dir.appendingPathComponent("nope").path])
        #expect(missing.status == 2)
        #expect(missing.output.contains("no such file or directory"), "\(missing.output)")

        let broken = dir.appendingPathComponent("broken.lua")
        try "return {\n  dhcp = function(req)\n    return {\n  end\n}\n".write(to: broken, atomically: true, encoding: .utf8)
        let bad = try run(["diff", "--from", "default", "--to", broken.path, fixtures])
        #expect(bad.status == 2)
        #expect(bad.output.contains("broken.lua:"), "\(bad.output)")

        let junk = dir.appendingPathComponent("junk.json")
        try "{\"not\": \"a fixture\"}".write(to: junk, atomically: true, encoding: .utf8)
        let r = try run(["diff", "--from", "default", "--to", "default", junk.path, fixtures])
        #expect(r.status == 2, "\(r.output)")
        #expect(r.output.contains("junk.json"), "\(r.output)")
    }
}
