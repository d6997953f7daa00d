import FuzzSupport
import Protocols

/// The pcap/pcapng reader behind `bootpolicy import` (fixtures from captures) and the capture
/// tests, then what import does with each datagram: client requests to 67/4011 are decoded.
/// Input: a capture file.
/// Checks: reading never traps and throws only PcapError; it finds no more datagrams than
/// packets, in increasing packet order, each payload no longer than the file; a DHCP payload
/// that decodes re-encodes to the same message.
enum PcapFuzz {
    static func run(_ input: [UInt8]) {
        let reader: PcapReader
        do {
            reader = try PcapReader(bytes: input)
        } catch {
            fuzzCheck(error is PcapError, "the reader threw a non-PcapError: \(error)")
            return
        }
        fuzzCheck(reader.datagrams.count <= reader.packetCount, "\(reader.datagrams.count) datagrams in \(reader.packetCount) packets")
        var last = -1
        for datagram in reader.datagrams {
            fuzzCheck(datagram.index > last, "datagram index \(datagram.index) after \(last)")
            last = datagram.index
            fuzzCheck(datagram.payload.count <= input.count, "a payload longer than the file")
            if let t = datagram.timestamp { fuzzCheck(!t.isNaN, "a NaN timestamp") }
            guard [67, 4011].contains(datagram.destinationPort), let message = try? DHCPMessage(bytes: datagram.payload) else { continue }
            fuzzCheck((try? DHCPMessage(bytes: message.bytes)) == message, "a captured DHCP message does not round-trip")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    PcapFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(PcapFuzz.run) } }
#endif
