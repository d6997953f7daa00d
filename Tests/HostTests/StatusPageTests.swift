import Foundation
import Testing
import TestSupport

/// The status page as an operator sees it: rendered by a real browser (headless Chromium).
@Suite(.serialized) struct StatusPageTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.requires(Requirement(chromium != nil, "chromium is not installed (apt-get install -y chromium; scripts/deps.sh test)")))
    func clientThatJustBootedAppearsInItsRow() throws {
        let keyDir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: keyDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: keyDir) }
        let key = try ScriptKeyFile(in: keyDir)
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp",
                                    "--http-port", "0", "--policy", "arch-aware", "--script-key", key.path])
        defer { server.stop() }
        let port = try server.startReady().port("http")
        // A client fetches its script: that is a boot step the page must show.
        _ = try runTool("/usr/bin/curl", ["-sS", key.scriptURL("http://127.0.0.1:\(port)", mac: "52-54-00-ab-cd-ef", extra: "&arch=efi-x64")])

        let artifacts = ServerProcess.packageRoot.appendingPathComponent("artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let shot = artifacts.appendingPathComponent("status-page.png")
        try? FileManager.default.removeItem(at: shot)
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("bp-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--user-data-dir=\(profile.path)", "--window-size=1280,720"]
        let dom = try runTool(Self.chromium!, common + ["--dump-dom", "http://127.0.0.1:\(port)/"], timeout: 90)
        #expect(dom.output.contains("data-mac=\"52:54:00:ab:cd:ef\""), "rendered DOM lacks the client:\n\(dom.output.suffix(2000))")
        #expect(dom.output.contains("efi-x64") || dom.output.contains("/boot.ipxe"))
        _ = try runTool(Self.chromium!, common + ["--screenshot=\(shot.path)", "http://127.0.0.1:\(port)/"], timeout: 90)
        let png = try Data(contentsOf: shot)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "screenshot is not a PNG")
        #expect(png.count > 5_000)
    }

    /// No other site may frame the page or run script in it; the data is never sniffed.
    @Test func thePageAndItsDataSendSecurityHeaders() throws {
        let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--no-dhcp", "--no-tftp", "--http-port", "0"])
        defer { server.stop() }
        let port = try server.startReady().port("http")
        func headers(_ path: String) throws -> String {
            try runTool("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-D", "-", "http://127.0.0.1:\(port)\(path)"]).output.lowercased()
        }
        let page = try headers("/")
        #expect(page.contains("content-security-policy: default-src 'none'; style-src 'unsafe-inline'") && page.contains("frame-ancestors 'none'"), "\(page)")
        #expect(page.contains("x-frame-options: deny") && page.contains("x-content-type-options: nosniff"), "\(page)")
        for path in ["/api/clients", "/metrics"] {
            #expect(try headers(path).contains("x-content-type-options: nosniff"), "\(path)")
        }
    }
}
