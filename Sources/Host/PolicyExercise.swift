import Foundation
import LuaBridge
import Protocols

/// What `bootpolicy check` does beyond loading: every hook of a policy is run on the recorded
/// requests (the shipped fixtures and the user's) and on one made-up request per kind of
/// firmware, so a misspelt decision field, a wrong type, a nil index or a budget overrun shows
/// up before a machine meets it. Each request is run a second time with a line break in every
/// value a client chooses (host name, classes, HTTP path and query, relay ids): a script line
/// that the break split in two means a request can write its own iPXE commands.
enum PolicyExercise {
    struct Finding: Hashable {
        var message: String
        var warning: Bool
    }

    static let marker = "BPINJECTED"

    /// The made-up requests: PXE BIOS, UEFI x64 and ARM64 PXE, UEFI HTTP boot, iPXE on BIOS and
    /// UEFI (DHCP), their TFTP and HTTP follow-ups.
    static func synthetic() -> [(String, BootRequest)] {
        let server = "192.168.77.2"
        func dhcp(_ mac: String, arch: UInt16, _ name: String, _ fw: BootRequest.Firmware, vendor: String, ipxe: Bool = false) -> BootRequest {
            var options: [UInt8: [UInt8]] = [53: [1], 60: Array(vendor.utf8), 93: [UInt8(arch >> 8), UInt8(arch & 0xff)]]
            if ipxe { options[175] = [0xb1, 0x05, 0x01, 0x10, 0xec, 0x81, 0x39] ; options[77] = Array("iPXE".utf8) }
            return BootRequest(kind: .dhcp, mac: mac, xid: 0x1234, messageType: "discover", archCode: arch, arch: name,
                               firmware: fw, vendorClass: vendor, userClass: ipxe ? ["iPXE"] : [], isIPXE: ipxe,
                               ipxeFeatures: ipxe ? ["http": 1] : [:], uuid: "8c6e0a52-1e0f-4c8b-9a4e-5b7d1c2a3f40",
                               serverAddress: server, serverPort: 67, options: options)
        }
        return [
            ("synthetic PXE BIOS", dhcp("52:54:00:00:0c:01", arch: 0, "bios", .bios, vendor: "PXEClient:Arch:00000:UNDI:002001")),
            ("synthetic UEFI x64 PXE", dhcp("52:54:00:00:0c:02", arch: 7, "efi-x64", .uefi, vendor: "PXEClient:Arch:00007:UNDI:003016")),
            ("synthetic UEFI ARM64 PXE", dhcp("52:54:00:00:0c:03", arch: 11, "efi-arm64", .uefi, vendor: "PXEClient:Arch:00011:UNDI:003000")),
            ("synthetic UEFI HTTP boot", dhcp("52:54:00:00:0c:04", arch: 16, "efi-x64-http", .httpBoot, vendor: "HTTPClient:Arch:00016:UNDI:003016")),
            ("synthetic iPXE BIOS", dhcp("52:54:00:00:0c:05", arch: 0, "bios", .ipxe, vendor: "PXEClient:Arch:00000:UNDI:002001", ipxe: true)),
            ("synthetic iPXE UEFI", dhcp("52:54:00:00:0c:06", arch: 7, "efi-x64", .ipxe, vendor: "PXEClient:Arch:00007:UNDI:003016", ipxe: true)),
            ("synthetic TFTP undionly.kpxe", BootRequest(kind: .tftp, mac: "52:54:00:00:0c:01", clientAddress: "192.168.77.50",
                                                         serverAddress: server, serverPort: 69, path: "undionly.kpxe")),
            ("synthetic TFTP ipxe.efi", BootRequest(kind: .tftp, mac: "52:54:00:00:0c:02", clientAddress: "192.168.77.51",
                                                    serverAddress: server, serverPort: 69, path: "ipxe.efi")),
            ("synthetic HTTP boot.ipxe", BootRequest(kind: .http, mac: "52:54:00:00:0c:05", clientAddress: "192.168.77.52",
                                                     serverAddress: server, serverPort: 8080, path: "/boot.ipxe",
                                                     query: ["mac": "52-54-00-00-0c-05", "arch": "bios"])),
            ("synthetic HTTP /", BootRequest(kind: .http, mac: "52:54:00:00:0c:06", clientAddress: "192.168.77.53",
                                             serverAddress: server, serverPort: 8080, path: "/")),
        ]
    }

    /// The request with a line break and the marker in every value a client picks.
    static func hostile(_ r: BootRequest) -> BootRequest {
        var h = r
        let bad = "x\n\(marker) y"
        h.hostname = bad
        h.vendorClass = (r.vendorClass ?? "PXEClient") + "\n\(marker)"
        h.userClass = r.userClass.map { $0 + "\n\(marker)" } + [bad]
        h.relay = BootRequest.Relay(giaddr: r.relay?.giaddr ?? "10.7.0.1", circuitID: bad, remoteID: bad)
        if r.kind == .http {
            h.path = (r.path ?? "/") + "\n\(marker)"
            h.query = r.query.mapValues { $0 + "\n\(marker)" }.merging(["name": bad]) { a, _ in a }
        }
        if r.kind == .tftp { h.path = (r.path ?? "x") + "\n\(marker)" }
        return h
    }

    /// Runs every request through `chain` (one policy), returns what went wrong.
    static func run(_ chain: PolicyChain, requests: [(String, BootRequest)]) -> [Finding] {
        var found: [Finding] = []
        var seen = Set<String>()
        for (label, request) in requests {
            let (_, steps) = chain.decideTraced(request)
            for step in steps {
                let problem: String?
                switch step.outcome {
                case .error(let m): problem = m
                case .budgetExceeded(let m): problem = m
                case .memoryExceeded(let m): problem = m
                default: problem = nil
                }
                if let problem, seen.insert(problem).inserted {
                    found.append(Finding(message: "\(problem) (\(step.hook) hook, on \(label))", warning: false))
                }
            }
            let (decision, _) = chain.decideTraced(hostile(request))
            guard let script = decision?.ipxeScript ?? decision?.content.map({ String(decoding: $0, as: UTF8.self) }),
                  script.hasPrefix("#!ipxe") else { continue }
            for line in script.split(separator: "\n") where line.hasPrefix(marker) || line.hasPrefix("\(marker) ") {
                let key = "inject:\(decision?.policy ?? "")"
                if seen.insert(key).inserted {
                    found.append(Finding(message: "\(decision?.policy ?? "a policy"): a line break in a request value (host name, class, relay id, HTTP path or query) starts a new line of its iPXE script: `\(line.prefix(60))` (\(request.kind.rawValue) hook, on \(label)); pass request values through ipxe.quote or the builder's commands, not raw(...) or string concatenation", warning: true))
                }
            }
        }
        return found
    }

    /// The shipped fixtures (beside the shipped policies) and every *.json under `dirs`.
    static func fixtures(in dirs: [String]) -> (requests: [(String, BootRequest)], problems: [String]) {
        var out: [(String, BootRequest)] = []
        var problems: [String] = []
        var all = dirs
        if let shipped = PolicyLocator.shippedDirectory() {
            let requests = URL(fileURLWithPath: shipped).deletingLastPathComponent().appendingPathComponent("fixtures/requests").path
            if FileManager.default.fileExists(atPath: requests) { all.insert(requests, at: 0) }
        }
        for dir in all {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
                problems.append("\(dir): cannot read the fixtures folder")
                continue
            }
            for name in names.sorted() where name.hasSuffix(".json") {
                let url = URL(fileURLWithPath: dir).appendingPathComponent(name)
                do {
                    var r = try Fixture.load(from: url).bootRequest()
                    if r.serverAddress == nil { r.serverAddress = r.family == .ipv6 ? PolicyTestRunner.labServerAddress6 : PolicyTestRunner.labServerAddress }
                    out.append((name, r))
                } catch {
                    problems.append("\(url.path): \(error)")
                }
            }
        }
        return (out, problems)
    }
}
