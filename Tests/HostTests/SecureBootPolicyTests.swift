import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The shipped secure-boot policy behind the real server: GRUB's config is served only to a
/// machine the server knows. From an address no DHCP exchange named (here loopback, where no
/// neighbour entry or lease gives a MAC) it is refused over HTTP and TFTP, with the reason;
/// the signed binaries beside it are served from the root as they are.
@Suite struct SecureBootPolicyTests {
    @Test func grubConfigIsRefusedToAMachineNobodyKnows() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("bp-sb-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("grub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try "not really shim\n".write(to: root.appendingPathComponent("shimx64.efi"), atomically: true, encoding: .utf8)
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--dhcp-port", "0", "--tftp-port", "0", "--http-port", "0",
                                    "--tftp-root", root.path, "--http-root", root.path, "--policy", "secure-boot", "--policy", "default"])
        defer { server.stop() }
        let ready = try server.startReady()
        let http = try ready.port("http"), tftp = try ready.port("tftp")

        let refused = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "-w", " %{http_code}", "http://127.0.0.1:\(http)/grub/grub.cfg"])
        #expect(refused.output.hasPrefix("no machine known for 127.0.0.1"), "\(refused.output)")
        #expect(refused.output.hasSuffix(" 403"), "\(refused.output)")
        let overTFTP = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "tftp://127.0.0.1:\(tftp)/grub/grub.cfg"])
        #expect(overTFTP.status != 0, "a refused TFTP read must fail: \(overTFTP.output)")
        // The refusal's reason goes into the TFTP error and the transfer log line.
        #expect(server.waitFor("detail=no machine known for 127.0.0.1 file=grub/grub.cfg", timeout: 5), "\(server.text)")
        // The binary itself is just a file of the root.
        let shim = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10", "tftp://127.0.0.1:\(tftp)/shimx64.efi"])
        #expect(shim.output == "not really shim\n", "\(shim.output)")
    }
}
