import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import Protocols

/// Side-by-side benchmark of bootpolicy's TFTP server against tftp-hpa's in.tftpd and dnsmasq.
/// Runs only with BOOTPOLICY_BENCH=1, from bench/tftp/run.sh, which builds in release, starts
/// the reference servers inside a network namespace of its own and passes their ports.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["BOOTPOLICY_BENCH"] == "1", "a benchmark: BOOTPOLICY_BENCH=1 runs it (scripts/deps.sh bench)"))
struct TFTPBenchTests {
    typealias Support = TFTPTestSupport
    let env = ProcessInfo.processInfo.environment

    struct Target {
        var name: String
        var port: Int
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// One atftp download; returns seconds or nil when it failed or the bytes differ.
    func atftp(_ port: Int, file: String, options: [String], expected: String) async throws -> Double? {
        let output = NSTemporaryDirectory() + "bp-tftp-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        var arguments: [String] = []
        for option in options { arguments += ["--option", option] }
        arguments += ["-g", "-r", file, "-l", output, "127.0.0.1", "\(port)"]
        let start = ContinuousClock.now
        let result = try await Support.run("/usr/bin/atftp", arguments, timeout: .seconds(600), poll: .milliseconds(1))
        let seconds = (ContinuousClock.now - start).seconds
        guard result.status == 0, !result.timedOut else { print("atftp failed: \(result.output)"); return nil }
        let hash = try await Support.run("/usr/bin/sha256sum", [output]).output.prefix(64)
        return String(hash) == expected ? seconds : nil
    }

    /// N concurrent downloads with the epoll load client (TFTPLoadClient); wall seconds and
    /// failures. Every byte is compared with the file's.
    func concurrent(_ port: Int, name: String, label: String, count: Int, file: String, blockSize: Int, windowSize: Int?, expected: [UInt8]) async -> (Double, Int) {
        let outcome = await TFTPLoadClient.run(port: port, file: file, count: count, blockSize: blockSize, windowSize: windowSize,
                                               expected: expected, threads: 2, timeout: 1, retries: 10)
        if !outcome.reasons.isEmpty { print("bench failures, \(name): \(outcome.reasons)") }
        print("bench resends \(label), \(name): \(String(format: "%.3f", outcome.seconds)) s, \(outcome.resends) resends after a timeout")
        return (outcome.seconds, outcome.failed)
    }

    @Test func compareServers() async throws {
        let root = try #require(env["BP_BENCH_ROOT"])
        let runs = Int(env["BP_BENCH_RUNS"] ?? "3") ?? 3
        let concurrency = Int(env["BP_BENCH_CONCURRENCY"] ?? "1000") ?? 1000
        let serverThreads = Int(env["BP_BENCH_SERVER_THREADS"] ?? "2") ?? 2
        // The group only reads requests; transfers run on the server's own threads.
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "bp.tftp.bench")
        logger.logLevel = .warning
        let server = try TFTPServer(
            configuration: .init(root: root, host: "127.0.0.1", port: 0, maxConcurrentTransfers: 4096, defaultTimeout: .seconds(1),
                                 transferThreads: serverThreads),
            logger: logger, eventLoopGroup: serverGroup)
        let task = Task { try await server.run() }
        var ourPort: Int?
        for _ in 0..<500 where ourPort == nil {
            ourPort = server.localAddress?.port
            try await Task.sleep(for: .milliseconds(10))
        }
        if let seconds = env["BP_BENCH_SERVE_SECONDS"].flatMap(Int.init) {
            // Profiling mode: just serve, so perf or a client can be pointed at the port.
            print("serving on 127.0.0.1:\(ourPort ?? 0) for \(seconds) s")
            try await Task.sleep(for: .seconds(seconds))
            server.stop()
            return
        }
        var targets = [Target(name: "bootpolicy", port: try #require(ourPort))]
        if let port = env["BP_BENCH_HPA_PORT"].flatMap(Int.init) { targets.append(Target(name: "tftp-hpa", port: port)) }
        if let port = env["BP_BENCH_DNSMASQ_PORT"].flatMap(Int.init) { targets.append(Target(name: "dnsmasq", port: port)) }

        let bigHash = String(try await Support.run("/usr/bin/sha256sum", [root + "/m100.bin"]).output.prefix(64))
        let small = try [UInt8](Data(contentsOf: URL(fileURLWithPath: root + "/m1.bin")))
        let singles: [(String, [String])] = [
            ("100 MB, blksize 512", ["blksize 512"]),
            ("100 MB, blksize 1468", ["blksize 1468"]),
            ("100 MB, blksize 1468 windowsize 8", ["blksize 1468", "windowsize 8"]),
        ]
        let multis: [(String, Int?)] = [
            ("\(concurrency) x 1 MB, blksize 1468", nil),
            ("\(concurrency) x 1 MB, blksize 1468 windowsize 8", 8),
        ]
        var table: [(String, [String: (Double, Int)])] = []
        let cases = env["BP_BENCH_CASES"] ?? "all"
        // Runs interleave the servers (bootpolicy, tftp-hpa, dnsmasq, bootpolicy, ...): on a shared
        // machine the load drifts, and back-to-back blocks per server would turn drift into ratio.
        for (label, options) in singles where cases != "multi" {
            var times: [String: [Double]] = [:]
            var failed: [String: Int] = [:]
            for _ in 0..<runs {
                for target in targets {
                    if let t = try await atftp(target.port, file: "m100.bin", options: options, expected: bigHash) {
                        times[target.name, default: []].append(t)
                    } else {
                        failed[target.name, default: 0] += 1
                    }
                }
            }
            var row: [String: (Double, Int)] = [:]
            for target in targets {
                row[target.name] = (median(times[target.name] ?? []), failed[target.name] ?? 0)
                print("bench \(label) \(target.name): \(times[target.name] ?? []) failed \(failed[target.name] ?? 0)")
            }
            table.append((label, row))
        }
        // BP_BENCH_ONLY: a case label's ending ("blksize 1468"), to profile one case alone.
        let only = env["BP_BENCH_ONLY"]
        for (label, windowSize) in multis where cases != "single" && (only.map { label.hasSuffix($0) } ?? true) {
            var times: [String: [Double]] = [:]
            var failed: [String: Int] = [:]
            for _ in 0..<runs {
                for target in targets {
                    let (t, f) = await concurrent(target.port, name: target.name, label: label, count: concurrency, file: "m1.bin", blockSize: 1468, windowSize: windowSize, expected: small)
                    times[target.name, default: []].append(t)
                    failed[target.name, default: 0] += f
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            var row: [String: (Double, Int)] = [:]
            for target in targets {
                row[target.name] = (median(times[target.name] ?? []), failed[target.name] ?? 0)
                print("bench \(label) \(target.name): \(times[target.name] ?? []) failed \(failed[target.name] ?? 0)")
            }
            table.append((label, row))
        }

        server.stop()
        _ = try? await task.value
        try await serverGroup.shutdownGracefully()

        let names = targets.map(\.name)
        var markdown = "| case | " + names.map { "\($0) s (failed)" }.joined(separator: " | ")
        markdown += " | " + names.dropFirst().map { "\($0) / bootpolicy" }.joined(separator: " | ") + " |\n"
        markdown += "|" + String(repeating: "---|", count: 1 + names.count * 2 - 1) + "\n"
        for (label, row) in table {
            var line = "| \(label) | "
            line += names.map { name in row[name].map { String(format: "%.3f (%d)", $0.0, $0.1) } ?? "-" }.joined(separator: " | ")
            let ours = row["bootpolicy"]?.0 ?? .nan
            line += " | " + names.dropFirst().map { name in row[name].map { String(format: "%.2fx", $0.0 / ours) } ?? "-" }.joined(separator: " | ")
            markdown += line + " |\n"
        }
        print(markdown)
        if let out = env["BP_BENCH_OUT"] { try markdown.write(toFile: out, atomically: true, encoding: .utf8) }
        for (_, row) in table { for (_, value) in row { #expect(value.1 == 0) } }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
