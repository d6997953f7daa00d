import Metrics
import NIOConcurrencyHelpers

/// The TFTP server's counters, created once so the hot path only increments.
final class TFTPMetrics: Sendable {
    private let dropped: NIOLockedValueBox<[String: Counter]>
    private let transfers: [TFTPOutcome: Counter]
    let bytes: Counter

    private let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
        var transfers: [TFTPOutcome: Counter] = [:]
        for outcome in TFTPOutcome.allCases {
            transfers[outcome] = Counter(label: "bootpolicy_tftp_transfers_total", dimensions: [("outcome", outcome.rawValue)], factory: factory)
        }
        self.transfers = transfers
        self.bytes = Counter(label: "bootpolicy_tftp_bytes_total", factory: factory)
        self.dropped = NIOLockedValueBox([:])
    }

    func transfer(_ outcome: TFTPOutcome) {
        transfers[outcome]?.increment()
    }

    func drop(_ reason: String) {
        let counter = dropped.withLockedValue { counters -> Counter in
            if let counter = counters[reason] { return counter }
            let counter = Counter(label: "bootpolicy_tftp_dropped_total", dimensions: [("reason", reason)], factory: factory)
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }
}
