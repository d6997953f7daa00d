import Clients
import Foundation
import FuzzSupport
import Logging
import LuaBridge
import NIOCore
import Protocols

/// The Lua request/decision bridge: random requests through the shipped policies
/// (policies/default.lua, policies/arch-aware.lua, policies/secure-boot.lua and its GRUB
/// builder) in the pipeline every server runs
/// (BootPipeline: enrich from what the client said before, decide, remember), with the default
/// budgets (instructions, CPU and wall time, memory).
/// Input: a chain byte (default / arch-aware / arch-aware with the example's config / both /
/// secure-boot then default),
/// then up to 4 requests, each a kind byte and its fields. A DHCP request is a 2-byte length and
/// a datagram, turned into a request by the servers' own derivation (`BootRequest(dhcp:)`), or,
/// when it does not decode, made of fields read from the bytes; TFTP and HTTP requests are
/// fields (MAC from a small set so later requests meet earlier ones, path, query, headers, ...).
/// Checks: nothing traps, whatever the request holds (strings with NULs and bad UTF-8, huge
/// option tables, any arch code); a DHCP decision builds a reply that fits its limit and
/// re-decodes as itself.
enum PolicyFuzz {
    static let repo: String = ProcessInfo.processInfo.environment["BOOTPOLICY_ROOT"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    static let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    static let limits = PolicyLimits(states: 1)

    static let pipelines: [BootPipeline] = {
        let defaultPolicy = PolicySpec(path: repo + "/policies/default.lua")
        let archAware = PolicySpec(path: repo + "/policies/arch-aware.lua")
        let configured = PolicySpec(path: repo + "/policies/arch-aware.lua", config: [
            "efi_x64": "snponly.efi", "http_port": 8080,
            "script": .table([
                "echo": .list(["booting ${mac} into the installer"]),
                "kernel": "http://10.0.0.5:8080/debian/vmlinuz", "initrd": "http://10.0.0.5:8080/debian/initrd.gz",
                "cmdline": "auto=true priority=critical",
            ]),
        ])
        // The GRUB builder behind secure-boot.lua, with a cmdline full of GRUB's specials.
        let secureBoot = PolicySpec(path: repo + "/policies/secure-boot.lua", config: [
            "kernel": "debian/linux", "initrd": "debian/initrd.gz", "cmdline": "console=ttyS0 a'b \"c\" ${x} $y; {z}",
        ])
        return [[defaultPolicy], [archAware], [configured], [configured, defaultPolicy], [secureBoot, defaultPolicy]].map { specs in
            do {
                let chain = try PolicyChain(specs: specs, limits: limits, logger: logger)
                return BootPipeline(chain: chain, directory: ClientDirectory(limits: .init(clients: 256)), logger: logger)
            } catch {
                fatalError("cannot load \(specs.map(\.path)) (set BOOTPOLICY_ROOT to the repository): \(error)")
            }
        }
    }()

    static let macs = ["52:54:00:77:00:01", "52:54:00:77:00:02", "52:54:00:77:00:03", ""]
    static let responder = ProxyDHCPResponder()
    static let serverAddress = IPv4Address("192.168.77.2")!

    static func run(_ input: [UInt8]) {
        var r = FuzzReader(input)
        let pipeline = pipelines[r.choose(pipelines.count)]
        var count = 0
        while !r.isAtEnd, count < 4 {
            count += 1
            let kind = r.byte()
            switch kind % 3 {
            case 0: dhcp(&r, pipeline, port: kind & 0x10 != 0 ? 4011 : 67)
            case 1: fields(&r, pipeline, kind: .tftp)
            default: fields(&r, pipeline, kind: .http)
            }
        }
    }

    static func dhcp(_ r: inout FuzzReader, _ pipeline: BootPipeline, port: Int) {
        let length = Int(r.uint16())
        var datagram: [UInt8] = []
        for _ in 0..<min(length, 1500) where !r.isAtEnd { datagram.append(r.byte()) }
        guard let message = try? DHCPMessage(bytes: datagram) else {
            var request = fieldsRequest(&r, kind: .dhcp)
            request.messageType = r.pick(["discover", "request", "inform", "ack", "", "x\0y"])
            request.xid = r.uint32()
            _ = pipeline.decide(request, datagram: ByteBuffer(bytes: datagram))
            return
        }
        var request = BootRequest(dhcp: message, serverPort: port, interface: "fuzz0", source: "0.0.0.0")
        request.serverAddress = serverAddress.description
        let decision = pipeline.decide(request, datagram: ByteBuffer(bytes: datagram))
        let arrival = ProxyDHCPResponder.Arrival(port: port, serverAddress: serverAddress, interface: "fuzz0",
                                                 source: .any, sourcePort: 68)
        if case .success(let reply) = responder.reply(to: message, arrival: arrival, decision: decision) {
            let bytes = reply.message.bytes
            let limit = ProxyDHCPResponder.replyLimit(for: message)
            fuzzCheck(bytes.count <= limit, "reply of \(bytes.count) bytes over its limit \(limit)")
            fuzzCheck((try? DHCPMessage(bytes: bytes)) == reply.message, "the reply does not re-decode as itself")
        }
    }

    static func fields(_ r: inout FuzzReader, _ pipeline: BootPipeline, kind: BootRequest.Kind) {
        let request = fieldsRequest(&r, kind: kind)
        _ = pipeline.decide(request, datagram: ByteBuffer())
    }

    static func fieldsRequest(_ r: inout FuzzReader, kind: BootRequest.Kind) -> BootRequest {
        let flags = r.byte()
        var request = BootRequest(kind: kind)
        request.mac = flags & 1 != 0 ? r.string(max: 32) : macs[r.choose(macs.count)]
        if flags & 2 != 0 {
            let code = r.uint16()
            request.archCode = code
            request.arch = r.pick(["bios", "efi-x64", "efi-bc", "efi-ia32", "efi-arm64", "efi-x64-http", "efi-arm64-http", "", "arch-\(code)"])
        }
        request.firmware = r.pick(BootRequest.Firmware.allCases)
        if flags & 4 != 0 { request.vendorClass = r.pick(["PXEClient:Arch:00007:UNDI:003000", "HTTPClient:Arch:00016", r.string()]) }
        if flags & 8 != 0 { request.userClass = (0..<r.choose(4)).map { _ in r.pick(["iPXE", "gPXE", r.string(max: 64)]) } }
        request.isIPXE = flags & 0x10 != 0
        if request.isIPXE { request.ipxeFeatures = ["http": Int(r.byte()), "https": Int(r.byte()), r.string(max: 16): Int(r.byte())] }
        if flags & 0x20 != 0 {
            for _ in 0..<r.choose(6) { request.options[r.byte()] = r.data() }
        }
        request.hostname = flags & 0x40 != 0 ? r.string(max: 64) : nil
        request.serverAddress = r.pick(["192.168.77.2", nil, "127.0.0.1", r.string(max: 40)])
        request.clientAddress = r.pick(["192.168.77.50", nil, r.string(max: 40)])
        request.serverPort = r.pick([69, 8080, 67, 4011, nil])
        if flags & 0x80 != 0 {
            request.relay = BootRequest.Relay(giaddr: r.pick(["10.0.0.1", r.string(max: 20)]), circuitID: r.string(max: 32), remoteID: nil)
        }
        request.path = r.pick(["/boot.ipxe", "ipxe.efi", "undionly.kpxe", "/", "grub/grub.cfg", "/grub/grub.cfg-01-52-54-00-77-00-01",
                               "grub/grub.cfg-52:54:00:77:00:02", "grub/grub.cfg-C0A84D32", "grub/grub.cfg-" + r.string(max: 24), r.string()])
        for _ in 0..<r.choose(4) { request.query[r.pick(["mac", "arch", "x", r.string(max: 16)])] = r.string(max: 64) }
        if kind == .http {
            request.method = r.pick(["GET", "HEAD", "POST", r.string(max: 8)])
            for _ in 0..<r.choose(4) { request.headers[r.pick(["user-agent", "host", r.string(max: 16)])] = r.string(max: 64) }
            request.body = r.data()
        }
        return request
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    PolicyFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(PolicyFuzz.run) } }
#endif
