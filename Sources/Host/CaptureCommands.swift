import ArgumentParser
import Foundation
import Protocols

/// `bootpolicy import capture.pcap --out DIR`: recorded client requests from a capture file.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Turn pcap/pcapng captures into request fixtures for policy tests (one JSON file per distinct client request)."
    )

    @Argument(help: ArgumentHelp("Capture files (pcap or pcapng).", valueName: "capture"))
    var captures: [String]

    @Option(help: ArgumentHelp("Directory for the fixtures.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Name prefix for the fixtures (default: the capture's file name).", valueName: "prefix"))
    var prefix: String?

    @Option(help: ArgumentHelp("Where the capture came from, kept in each fixture's `origin`.", valueName: "text"))
    var origin: String?

    func run() throws {
        var total = 0
        for path in captures {
            let bytes: [UInt8]
            do {
                bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw ExitMessage("bootpolicy import: \(path): cannot read: \(error.localizedDescription)")
            }
            let reader: PcapReader
            do {
                reader = try PcapReader(bytes: bytes)
            } catch {
                throw ExitMessage("bootpolicy import: \(path): \(error)")
            }
            let base = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            var writer = try FixtureWriter(directory: out, origin: origin ?? "imported from \(URL(fileURLWithPath: path).lastPathComponent)")
            var skipped = 0
            for datagram in reader.datagrams where [67, 4011].contains(datagram.destinationPort) {
                do {
                    let message = try DHCPMessage(bytes: datagram.payload)
                    if let url = try writer.add(message, serverPort: Int(datagram.destinationPort),
                                                source: datagram.source.description, interface: nil, prefix: prefix ?? base) {
                        print("wrote \(url.path)")
                        total += 1
                    }
                } catch let error as DHCPError {
                    skipped += 1
                    FileHandle.standardError.write(Data("bootpolicy import: \(path): packet \(datagram.index): skipped: \(error)\n".utf8))
                }
            }
            // DHCPv6: client messages (and relays' Relay-forward) to 547, EDK2's Request to 4011.
            for datagram in reader.datagrams6 where [547, 4011].contains(datagram.destinationPort) {
                do {
                    let packet = try DHCPv6Packet(bytes: datagram.payload)
                    if let url = try writer.add(packet, bytes: datagram.payload, serverPort: Int(datagram.destinationPort),
                                                source: datagram.source, prefix: prefix ?? base) {
                        print("wrote \(url.path)")
                        total += 1
                    }
                } catch {
                    skipped += 1
                    FileHandle.standardError.write(Data("bootpolicy import: \(path): packet \(datagram.index): skipped: DHCPv6: \(error)\n".utf8))
                }
            }
            print("\(path): \(reader.packetCount) packets, \(reader.datagrams.count + reader.datagrams6.count) UDP, \(writer.written.count) fixtures, \(skipped) malformed")
        }
        if total == 0 { print("no client requests to ports 67/4011 (DHCPv4) or 547/4011 (DHCPv6) found") }
    }
}

/// `bootpolicy record --interface X --out DIR`: listens only, never answers.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Listen (never answer) on an interface and write each distinct DHCP or DHCPv6 client request as a fixture.",
        discussion: "Uses a packet socket, so it binds no port and runs beside a live DHCP server. Needs root (CAP_NET_RAW)."
    )

    @Option(help: ArgumentHelp("Interface to listen on.", valueName: "name"))
    var interface: String

    @Option(help: ArgumentHelp("Directory for the fixtures.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Stop after this many fixtures (default: run until interrupted or --duration).", valueName: "n"))
    var count: Int?

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?

    @Option(help: ArgumentHelp("Name prefix for the fixtures.", valueName: "prefix"))
    var prefix: String = "recorded"

    func run() throws {
        // Line-buffered, so a pipe (a test, `| tee`) sees each fixture as it is written.
        setvbuf(stdout, nil, _IOLBF, 0)
        let sniffer: PacketSniffer
        do {
            sniffer = try PacketSniffer(interface: interface, ports: [67, 4011], ports6: [547, 4011])
        } catch {
            throw ExitMessage("bootpolicy record: \(error)")
        }
        var writer = try FixtureWriter(directory: out, origin: "recorded by bootpolicy record on \(interface) at \(ISO8601DateFormatter().string(from: Date()))")
        let deadline = duration.map { Date().addingTimeInterval($0) }
        print("recording DHCP and DHCPv6 client requests on \(interface) into \(out) (listen only)")
        while count.map({ writer.written.count < $0 }) ?? true {
            let left = deadline.map { $0.timeIntervalSinceNow } ?? 3600
            if left <= 0 { break }
            guard let datagram = sniffer.next(timeout: min(left, 3600)) else { continue }
            if datagram.isIPv6 {
                guard let packet = try? DHCPv6Packet(bytes: datagram.payload), let source = IPv6Address(datagram.source) else { continue }
                if let url = try writer.add(packet, bytes: datagram.payload, serverPort: Int(datagram.destinationPort), source: source,
                                            prefix: prefix, interface: interface) {
                    print("wrote \(url.path)")
                }
                continue
            }
            guard let message = try? DHCPMessage(bytes: datagram.payload) else { continue }
            if let url = try writer.add(message, serverPort: Int(datagram.destinationPort), source: datagram.source,
                                        interface: interface, prefix: prefix) {
                print("wrote \(url.path)")
            }
        }
        print("\(writer.written.count) fixtures written")
    }
}
