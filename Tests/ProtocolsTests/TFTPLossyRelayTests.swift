import Foundation
import Testing
@testable import Protocols

/// Transfers through `TFTPLossyRelay`, which drops 10% of the packets in each direction with a
/// seeded generator: retransmission and window restarts must still deliver the exact bytes.
@Suite struct TFTPLossyRelayTests {
    typealias Support = TFTPTestSupport

    @Test(arguments: [
        ("k70.bin", [TFTPOption](), UInt64(1)),
        ("k70.bin", [TFTPOption(name: "blksize", value: "1468"), TFTPOption(name: "windowsize", value: "8")], 2),
        ("m10.bin", [TFTPOption(name: "blksize", value: "8192"), TFTPOption(name: "windowsize", value: "16")], 3),
    ])
    func completesThroughTenPercentLoss(file: String, options: [TFTPOption], seed: UInt64) async throws {
        try await Support.withServer(configure: { $0.defaultTimeout = .milliseconds(60); $0.maxRetries = 30 }) { _, port in
            let relay = TFTPLossyRelay(serverPort: port, dropRate: 0.10, seed: seed)
            defer { relay.stop() }
            let result = try await TFTPTestClient.get(port: relay.port, file: file, options: options, keepBytes: false,
                                                      timeout: .milliseconds(100), retries: 40)
            #expect(result.error == nil)
            #expect(!result.timedOut)
            #expect(result.hash == Support.fnv(file: Support.sharedRoot + "/" + file))
            #expect(relay.dropped > 0, "the relay dropped nothing: the test proves nothing")
            print("lossy \(file) \(options.map { "\($0.name)=\($0.value)" }): forwarded \(relay.forwarded), dropped \(relay.dropped)")
        }
    }
}
