import Foundation
import Testing
@testable import Host

/// check, explain, import and test as a user runs them: the real binary, real files.
@Suite struct CommandTests {
    let root = ServerProcess.packageRoot

    func run(_ args: [String]) throws -> (status: Int32, text: String) {
        let p = ServerProcess(args)
        let status = try p.runToEnd(timeout: 60)
        return (status, p.text)
    }

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `file: arch-aware` in a config names the shipped policy, as `--policy arch-aware` does,
    /// unless a file of that name lies beside the config; paths stay relative to the config.
    @Test func aConfigNamesShippedPoliciesByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-names-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.yaml").path
        try "return { name = 'mine', dhcp = function() end }\n".write(toFile: dir.appendingPathComponent("mine").path, atomically: true, encoding: .utf8)
        try "return { name = 'own', dhcp = function() end }\n".write(toFile: dir.appendingPathComponent("own.lua").path, atomically: true, encoding: .utf8)
        try "policies:\n  - file: arch-aware\n  - file: default\n  - file: mine\n  - file: ./own.lua\n".write(toFile: path, atomically: true, encoding: .utf8)
        let specs = try PolicySetup.specs(from: try Configuration.load(path: path))
        #expect(specs.map(\.name) == ["arch-aware", "default", "mine", "own"], "\(specs)")
        #expect(specs[0].path.hasSuffix("policies/arch-aware.lua") && specs[1].path.hasSuffix("policies/default.lua"), "\(specs)")
        #expect(specs[2].path == dir.appendingPathComponent("mine").path && specs[3].path == dir.appendingPathComponent("own.lua").path, "\(specs)")
    }

    /// limits.time_ms is the CPU budget of a hook; the wall-clock backstop stays above it.
    @Test func timeLimitIsTheCPUBudget() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.yaml").path
        for (ms, cpu, wall) in [(5, 5.0, 250.0), (100, 100.0, 500.0)] {
            try "limits:\n  time_ms: \(ms)\n".write(toFile: path, atomically: true, encoding: .utf8)
            let limits = PolicySetup.limits(from: try Configuration.load(path: path))
            #expect(limits.cpuTime == cpu && limits.wallClock == wall, "time_ms \(ms): \(limits.cpuTime) / \(limits.wallClock)")
        }
        try "limits: {}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let defaults = PolicySetup.limits(from: try Configuration.load(path: path))
        #expect(defaults.cpuTime == 20 && defaults.wallClock == 250)
    }

    @Test func checkPassesOnShippedPolicies() throws {
        let r = try run(["check", "--policy", "default", "--policy", "arch-aware"])
        #expect(r.status == 0, "\(r.text)")
        #expect(r.text.contains("check passed: 2 policies in the chain: default -> arch-aware"))
    }

    @Test func checkReportsEveryBrokenPolicyWithFileAndLine() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "return {\n  dhcp = function(req) return { filename = } end,\n}\n".write(to: dir.appendingPathComponent("one.lua"), atomically: true, encoding: .utf8)
        try "local x = 1\nreturn 42\n".write(to: dir.appendingPathComponent("two.lua"), atomically: true, encoding: .utf8)
        let r = try run(["check", "--policy", dir.appendingPathComponent("one.lua").path, "--policy", dir.appendingPathComponent("two.lua").path])
        #expect(r.status == 1)
        #expect(r.text.contains("one.lua:2:"), "\(r.text)")
        #expect(r.text.contains("two.lua"), "\(r.text)")
    }

    @Test func checkNamesTheConfigKeyThatIsWrong() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("bp.yaml")
        try "tftp:\n  port: sixty-nine\n".write(to: config, atomically: true, encoding: .utf8)
        let r = try run(["check", "--config", config.path])
        #expect(r.status == 1)
        #expect(r.text.contains("bp.yaml: tftp.port"), "\(r.text)")
        try "tftp:\n  prot: 69\n".write(to: config, atomically: true, encoding: .utf8)
        let typo = try run(["check", "--config", config.path])
        #expect(typo.status == 1)
        #expect(typo.text.contains("unknown key 'tftp.prot' (known: enabled, max_transfers, max_transfers_per_client, port, root, threads)"), "\(typo.text)")
    }

    @Test func exampleConfigChecks() throws {
        let r = try run(["check", "--config", root.appendingPathComponent("examples/bootpolicy.yaml").path])
        // /srv/tftp does not exist here; everything else in the example must load.
        #expect(r.text.contains("ok    \(root.appendingPathComponent("policies/arch-aware.lua").path)"), "\(r.text)")
        #expect(r.text.contains("ok    \(root.appendingPathComponent("policies/default.lua").path)"), "\(r.text)")
        #expect(!r.text.contains("unknown key"), "\(r.text)")
    }

    @Test func explainShowsChainDecisionAndReply() throws {
        let fixture = root.appendingPathComponent("fixtures/requests/ovmf-pxe-request-4011.json").path
        let r = try run(["explain", "--request", fixture, "--policy", "default", "--policy", "arch-aware"])
        #expect(r.status == 0, "\(r.text)")
        #expect(r.text.contains("firmware uefi  arch efi-x64 (7)"), "\(r.text)")
        #expect(r.text.contains("default        DECIDED"), "\(r.text)")
        #expect(r.text.contains("arch-aware     not reached"), "\(r.text)")
        #expect(r.text.contains("filename undionly.kpxe"))
        #expect(r.text.contains("reply"))
        #expect(r.text.contains("ack"), "\(r.text)")
    }

    /// A policy that fails is skipped, as `serve` would, and the decision of the next one is
    /// shown; the exit status still says something is broken.
    @Test func explainExitsNonZeroWhenAPolicyFailed() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.lua")
        try "return { dhcp = function(req)\n  return { filenme = 'x' }\nend }\n".write(to: bad, atomically: true, encoding: .utf8)
        let fixture = root.appendingPathComponent("fixtures/requests/pxe-bios-discover.json").path
        let r = try run(["explain", "--request", fixture, "--policy", bad.path, "--policy", "default"])
        #expect(r.status == 1, "\(r.text)")
        #expect(r.text.contains("error: bad.lua:2: unknown decision field 'filenme'"), "\(r.text)")
        #expect(r.text.contains("decision by default") && r.text.contains("a policy failed (bad)"), "\(r.text)")
    }

    /// A TFTP request explained after its client's DHCP request sees what `serve` would: the
    /// arch and firmware that DHCP request taught the pipeline.
    @Test func explainAFileRequestWithWhatItsDHCPRequestTaught() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("arch.lua")
        try "return { tftp = function(req) return { refuse = \"arch \" .. tostring(req.arch) .. \" \" .. req.firmware } end }\n"
            .write(to: policy, atomically: true, encoding: .utf8)
        let tftp = dir.appendingPathComponent("tftp.json")
        try #"{"name": "t", "kind": "tftp", "mac": "52:54:00:77:00:02", "path": "ipxe.efi", "source": "192.168.77.50"}"#
            .write(to: tftp, atomically: true, encoding: .utf8)
        let dhcp = root.appendingPathComponent("fixtures/requests/ovmf-pxe-discover.json").path
        let alone = try run(["explain", "--request", tftp.path, "--policy", policy.path])
        #expect(alone.status == 0, "\(alone.text)")
        #expect(alone.text.contains("refuse arch nil unknown"), "\(alone.text)")
        let after = try run(["explain", "--after", dhcp, "--request", tftp.path, "--policy", policy.path])
        #expect(after.status == 0, "\(after.text)")
        #expect(after.text.contains("learnt from its DHCP request: arch efi-x64, firmware uefi"), "\(after.text)")
        #expect(after.text.contains("refuse arch efi-x64 uefi"), "\(after.text)")
    }

    @Test func explainSaysWhenNothingDecides() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pass = dir.appendingPathComponent("pass.lua")
        try "return { dhcp = function(req) return nil end }\n".write(to: pass, atomically: true, encoding: .utf8)
        let fixture = root.appendingPathComponent("fixtures/requests/pxe-bios-discover.json").path
        let r = try run(["explain", "--request", fixture, "--policy", pass.path])
        #expect(r.status == 0)
        #expect(r.text.contains("pass           passed"), "\(r.text)")
        #expect(r.text.contains("decision: none"))
    }

    @Test func importWritesOneFixturePerDistinctRequest() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try run(["import", root.appendingPathComponent("fixtures/lab/bootpolicy-uefi.pcap").path, "--out", dir.path, "--prefix", "t"])
        #expect(r.status == 0, "\(r.text)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files == ["t-ipxe-efi-x64-discover-525400770002.json", "t-ipxe-efi-x64-request-525400770002.json",
                          "t-uefi-efi-x64-discover-525400770002.json", "t-uefi-efi-x64-request-4011-525400770002.json",
                          "t-uefi-efi-x64-request-525400770002.json"], "\(files)")
        // What import wrote is what policy tests and explain read back.
        let e = try run(["explain", "--request", dir.appendingPathComponent("t-ipxe-efi-x64-discover-525400770002.json").path])
        #expect(e.text.contains("filename bootstrap.ipxe"), "\(e.text)")
    }

    /// DHCPv6 captures too (the lab's OVMF and iPXE recordings): a fixture per distinct
    /// Solicit, `family: ipv6`, that explain answers with a DHCPv6 Advertise.
    @Test func importWritesDHCPv6Fixtures() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try run(["import", root.appendingPathComponent("fixtures/lab/v6/ovmf-pxe6.pcap").path,
                         root.appendingPathComponent("fixtures/lab/v6/ipxe6.pcap").path, "--out", dir.path, "--prefix", "t"])
        #expect(r.status == 0, "\(r.text)")
        #expect(r.text.contains("ovmf-pxe6.pcap: 60 packets, 15 UDP, 3 fixtures, 0 malformed"), "\(r.text)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files == ["t-v6-http-boot-efi-x64-http-solicit-525400790002.json", "t-v6-ipxe-bios-solicit-525400790001.json",
                          "t-v6-uefi-efi-x64-solicit-525400790002.json", "t-v6-unknown-noarch-solicit-525400790002.json"], "\(files)")
        let e = try run(["explain", "--policy", "arch-aware", "--request", dir.appendingPathComponent("t-v6-uefi-efi-x64-solicit-525400790002.json").path])
        #expect(e.text.contains("advertise  boot-file-url tftp://[fd77::2]/ipxe.efi"), "\(e.text)")
    }

    @Test func importRefusesWhatIsNotACapture() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.pcap")
        try Data("this is not a capture".utf8).write(to: junk)
        let r = try run(["import", junk.path, "--out", dir.appendingPathComponent("out").path])
        #expect(r.status != 0)
        #expect(r.text.contains("junk.pcap:"), "\(r.text)")
    }

    @Test func policyTestFailuresExitOne() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let test = dir.appendingPathComponent("x_test.lua")
        try """
            local chain = policy_chain { { file = "\(root.appendingPathComponent("policies/default.lua").path)" } }
            test("right", function() eq(chain:dhcp(request { mac = "52:54:00:00:00:01", options = { [175] = "" } }).filename, "bootstrap.ipxe") end)
            test("wrong", function() eq(chain:dhcp(request { mac = "52:54:00:00:00:01" }).filename, "ipxe.efi") end)

            """.write(to: test, atomically: true, encoding: .utf8)
        let r = try run(["test", dir.path])
        #expect(r.status == 1)
        #expect(r.text.contains("x_test.lua:3: expected \"ipxe.efi\""), "\(r.text)")
        #expect(r.text.hasSuffix("1 passed, 1 failed\n"), "\(r.text)")
    }
}
