import Foundation
import Protocols
#if canImport(Glibc)
import Glibc
#endif

/// A server's script key (`--script-key`), and the URLs its tokens open: what a policy hands
/// out at DHCP time, made by the test as the policy would.
struct ScriptKeyFile {
    let path: String
    let tokens: ScriptTokens

    /// A new key file (mode 600) in `dir`.
    init(in dir: URL, name: String = "script-key") throws {
        path = dir.appendingPathComponent(name).path
        let key = "test-key-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try (key + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        tokens = ScriptTokens(key: Array(key.utf8))
    }

    /// The key a server made for itself (beside its state file).
    init(reading path: String) throws {
        self.path = path
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        tokens = ScriptTokens(key: Array(text.utf8))
    }

    /// `base/boot.ipxe?mac=MAC&token=...` plus `extra` query parameters.
    func scriptURL(_ base: String, mac: String, extra: String = "") -> String {
        base + "/boot.ipxe?mac=\(mac)&token=\(tokens.token(for: mac) ?? "not-a-mac")" + extra
    }
}
