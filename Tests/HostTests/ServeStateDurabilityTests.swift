import Clients
import Foundation
import Protocols
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What a state-writing policy answered is still true after the server is killed with SIGKILL,
/// under load, round after round: `state.set` is durable before its answer leaves.
///
/// The policy counts each client's DISCOVERs in its state and answers `n<count>.ipxe`. A load
/// generator sends DISCOVERs from 1,000 MACs over loopback (one outstanding request per MAC),
/// and the server is killed at a random moment while they flow. After every kill, with the
/// server down, the database must hold for each MAC a count at least as high as the highest
/// the client was answered (else an acknowledged write was lost); and across all rounds no
/// client may be answered the same count twice (a lost write would be handed out again).
@Suite(.serialized) struct ServeStateDurabilityTests {
    static let policy = """
        return { dhcp = function(req)
          local s = state.get(req.mac) or {}
          local n = (s.n or 0) + 1
          state.set(req.mac, { n = n, xid = req.xid }, 86400)
          return { filename = "n" .. n .. ".ipxe", note = "count " .. n }
        end }
        """

    static let clients = 1_000
    static func mac(_ i: Int) -> [UInt8] { [0x02, 0x77, 0x00, 0x00, UInt8(i >> 8), UInt8(i & 0xFF)] }

    /// The load: a UDP socket on loopback, DISCOVERs out, OFFERs in, on two threads.
    final class Load: @unchecked Sendable {
        let fd: Int32
        let port: Int
        let lock = NSLock()
        /// Per client: every count it was answered, in order.
        var answered: [[Int]] = Array(repeating: [], count: ServeStateDurabilityTests.clients)
        var outstanding: [Double] = Array(repeating: 0, count: ServeStateDurabilityTests.clients)
        var sent = 0
        var running = true
        var xid: UInt32 = 0x7700_0000

        init(serverPort: Int) throws {
            port = serverPort
            fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EIO) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var tv = timeval(tv_sec: 0, tv_usec: 20_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var size: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }

        deinit { close(fd) }

        func now() -> Double { Date().timeIntervalSince1970 }

        /// Sends at about `rate` per second for `seconds`, one outstanding request per client.
        func send(rate: Double, seconds: Double) {
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_addr.s_addr = inet_addr("127.0.0.1")
            to.sin_port = in_port_t(UInt16(port).bigEndian)
            let end = now() + seconds
            var next = 0
            let gap = 1 / rate
            var due = now()
            while now() < end {
                let i = next % ServeStateDurabilityTests.clients
                next += 1
                lock.lock()
                let busy = outstanding[i] > now() - 1.0
                if !busy { outstanding[i] = now(); xid &+= 1 }
                let x = xid
                lock.unlock()
                if busy { continue }
                var m = DHCPMessage(op: .request, xid: x, flags: 0x8000, chaddr: ServeStateDurabilityTests.mac(i))
                m.messageType = .discover
                m.options.set(93, [0, 0])
                m.vendorClass = "PXEClient:Arch:00000:UNDI:002001"
                let bytes = m.bytes
                _ = bytes.withUnsafeBytes { b in
                    withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                }
                lock.lock(); sent += 1; lock.unlock()
                due += gap
                let wait = due - now()
                if wait > 0 { usleep(useconds_t(wait * 1e6)) }
            }
        }

        /// Reads OFFERs until `stop()`; each names the count the server stored.
        func receive() {
            var buffer = [UInt8](repeating: 0, count: 2048)
            while true {
                lock.lock(); let go = running; lock.unlock()
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { if go { continue } else { break } }
                guard let m = try? DHCPMessage(bytes: Array(buffer[..<n])), m.chaddr.count >= 6 else { continue }
                let i = Int(m.chaddr[4]) << 8 | Int(m.chaddr[5])
                let file = m.bootFile
                guard i < ServeStateDurabilityTests.clients, file.hasPrefix("n"), let count = Int(file.dropFirst().dropLast(5)) else { continue }
                lock.lock()
                answered[i].append(count)
                outstanding[i] = 0
                lock.unlock()
            }
        }

        func resetOutstanding() { lock.lock(); outstanding = Array(repeating: 0, count: outstanding.count); lock.unlock() }
    }

    @Test func killedUnderLoadLosesNoAnsweredWrite() throws {
        let rounds = Int(ProcessInfo.processInfo.environment["BP_KILL_ROUNDS"] ?? "") ?? 50
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("count.lua")
        try Self.policy.write(to: policy, atomically: true, encoding: .utf8)
        let db = dir.appendingPathComponent("state.db").path
        let port = freePort()
        let load = try Load(serverPort: port)
        let receiver = Thread { load.receive() }
        receiver.start()
        defer { load.lock.lock(); load.running = false; load.lock.unlock() }

        var lost: [String] = []
        var stored: [String: ClientState] = [:]
        var kills = 0
        for round in 0..<rounds {
            let server = ServerProcess(["serve", "--listen", "127.0.0.1", "--dhcp-port", "\(port)", "--no-tftp", "--no-http",
                                        "--policy", policy.path, "--state", db, "--log-level", "warning"])
            try server.start()
            // Ready when it answers: DISCOVERs sent before the bind are simply not answered.
            load.resetOutstanding()
            load.send(rate: 2_000, seconds: 0.3 + Double.random(in: 0..<0.5))
            let pid = server.process.processIdentifier
            try #require(server.process.isRunning, "round \(round): the server exited:\n\(server.text)")
            kill(pid, SIGKILL)
            kills += 1
            server.process.waitUntilExit()
            usleep(50_000)  // replies sent just before the kill are read

            // With the server down, the file must hold every answered count.
            let backend = try SQLiteStateBackend(path: db)
            stored = try backend.load(now: Date()).states
            backend.close()
            load.lock.lock()
            for i in 0..<Self.clients {
                guard let highest = load.answered[i].max() else { continue }
                let mac = Self.mac(i).map { String(format: "%02x", $0) }.joined(separator: ":")
                let have: Int
                if case .integer(let n)? = stored[mac]?.values["n"] { have = n } else { have = 0 }
                if have < highest { lost.append("round \(round): \(mac) was answered n\(highest), the file holds n\(have)") }
            }
            load.lock.unlock()
            if lost.count > 20 { break }
        }
        load.lock.lock()
        defer { load.lock.unlock() }
        let answers = load.answered.map(\.count).reduce(0, +)
        var duplicated: [String] = []
        for (i, counts) in load.answered.enumerated() where Set(counts).count != counts.count {
            duplicated.append("client \(i) answered \(counts)")
        }
        print("kill -9 loop: \(kills) kills, \(load.sent) DISCOVERs, \(answers) answers, \(stored.count) clients stored, \(lost.count) lost, \(duplicated.count) duplicated")
        #expect(kills == rounds)
        #expect(answers > rounds * 200, "the load must have been answered: \(answers) answers")
        #expect(lost.count == 0, "\(lost.prefix(10).joined(separator: "\n"))")
        #expect(duplicated.count == 0, "\(duplicated.prefix(10).joined(separator: "\n"))")
    }
}
