import Foundation

/// The package's root folder (fixtures live in `fixtures/`).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A fresh folder under the temp dir, removed by the caller.
func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bp-clients-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

final class TestClock: @unchecked Sendable {
    var t: Date
    init(_ t: Date = Date(timeIntervalSince1970: 1_000_000)) { self.t = t }
}
