import Foundation
import Testing
import TestSupport
@testable import Protocols

/// Real third-party clients (curl, atftp, tftp-hpa) against the real server on 127.0.0.1,
/// every boot-sized file, compared by sha256. One test per client program, each skipped (with
/// the install command) where its program is missing.
extension Requirement {
    static let curl = Requirement.tool("curl", install: "apt-get install -y curl")
    static let atftp = Requirement.tool("atftp", install: "apt-get install -y atftp")
    static let tftpHPA = Requirement.tool("tftp", install: "apt-get install -y tftp-hpa")
}

@Suite(.serialized) struct TFTPClientsTests {
    typealias Support = TFTPTestSupport

    enum Client: String, CaseIterable, CustomTestStringConvertible {
        case curl, curlBlksize1468, atftp, atftpBlksize1468, atftpWindow8, tftpHPA
        var testDescription: String { rawValue }

        var binary: String {
            switch self {
            case .curl, .curlBlksize1468: return "curl"
            case .atftp, .atftpBlksize1468, .atftpWindow8: return "atftp"
            case .tftpHPA: return "tftp"
            }
        }

        func arguments(port: Int, file: String, output: String) -> [String] {
            switch self {
            case .curl: return ["-sS", "--path-as-is", "--max-time", "300", "-o", output, "tftp://127.0.0.1:\(port)/\(file)"]
            case .curlBlksize1468:
                return ["-sS", "--max-time", "300", "--tftp-blksize", "1468", "-o", output, "tftp://127.0.0.1:\(port)/\(file)"]
            case .atftp: return ["-g", "-r", file, "-l", output, "127.0.0.1", "\(port)"]
            case .atftpBlksize1468: return ["--option", "blksize 1468", "-g", "-r", file, "-l", output, "127.0.0.1", "\(port)"]
            case .atftpWindow8:
                return ["--option", "blksize 1468", "--option", "windowsize 8", "-g", "-r", file, "-l", output, "127.0.0.1", "\(port)"]
            case .tftpHPA: return ["-m", "binary", "127.0.0.1", "\(port)", "-c", "get", file, output]
            }
        }
    }

    static func sha256(_ path: String) async throws -> String {
        let result = try await Support.run("/usr/bin/sha256sum", [path])
        return String(result.output.prefix(64))
    }

    /// Runs the client (its test requires its program); the file's hash and the run.
    static func fetch(_ client: Client, file: String, port: Int) async throws -> (String, Support.ProcessResult) {
        let binary = try #require(Support.which(client.binary), "\(client.binary) is not installed")
        let output = NSTemporaryDirectory() + "bp-tftp-get-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try await Support.run(binary, client.arguments(port: port, file: file, output: output), timeout: .seconds(300))
        guard FileManager.default.fileExists(atPath: output) else { return ("missing", result) }
        return (try await sha256(output), result)
    }

    @Test(.requires(.curl), arguments: [Client.curl, .curlBlksize1468])
    func curlDownloadsEverySize(_ client: Client) async throws { try await downloadsEverySize(client) }

    @Test(.requires(.atftp), arguments: [Client.atftp, .atftpBlksize1468, .atftpWindow8])
    func atftpDownloadsEverySize(_ client: Client) async throws { try await downloadsEverySize(client) }

    @Test(.requires(.tftpHPA), arguments: [Client.tftpHPA])
    func tftpHPADownloadsEverySize(_ client: Client) async throws { try await downloadsEverySize(client) }

    func downloadsEverySize(_ client: Client) async throws {
        try await Support.withServer(configure: { $0.defaultTimeout = .seconds(1) }) { _, port in
            for (file, _) in Support.sizes {
                let started = ContinuousClock.now
                let (hash, result) = try await Self.fetch(client, file: file, port: port)
                let expected = try await Self.sha256(Support.sharedRoot + "/" + file)
                #expect(hash == expected, "\(client) \(file): \(result.output)")
                #expect(!result.timedOut, "\(client) \(file)")
                print("\(client) \(file): \(ContinuousClock.now - started)")
            }
        }
    }

    @Test(.requires(.tftpHPA)) func tftpHPANetasciiRoundTrips() async throws {
        let binary = try #require(Support.which("tftp"))
        try await Support.withServer { _, port in
            let output = NSTemporaryDirectory() + "bp-tftp-ascii-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: output) }
            _ = try await Support.run(binary, ["-m", "ascii", "127.0.0.1", "\(port)", "-c", "get", "text.ipxe", output])
            #expect(FileManager.default.contents(atPath: output) == FileManager.default.contents(atPath: Support.sharedRoot + "/text.ipxe"))
        }
    }

    @Test(.requires(.curl)) func curlSeesErrors() async throws { try await clientsSeeErrors(.curl) }
    @Test(.requires(.atftp)) func atftpSeesErrors() async throws { try await clientsSeeErrors(.atftp) }
    @Test(.requires(.tftpHPA)) func tftpHPASeesErrors() async throws { try await clientsSeeErrors(.tftpHPA) }

    func clientsSeeErrors(_ client: Client) async throws {
        try await Support.withServer { _, port in
            // curl reports TFTP errors by exit code (68 not found, 69 permission); its message
            // text is unreliable (7.88 prints a stale getpeername error). The others print them.
            let (_, missing) = try await Self.fetch(client, file: "missing.bin", port: port)
            if client == .curl {
                #expect(missing.status == 68, "\(missing.output)")
            } else {
                #expect(missing.output.lowercased().contains("not found"), "\(client): \(missing.output)")
            }
            let (_, traversal) = try await Self.fetch(client, file: "../etc/passwd", port: port)
            if client == .curl {
                #expect(traversal.status == 69, "\(traversal.output)")
            } else {
                #expect(traversal.output.lowercased().contains("access violation"), "\(client): \(traversal.output)")
            }
        }
    }
}
