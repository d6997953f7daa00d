import Foundation
import FuzzSupport

/// The config-file loader (`bootpolicy serve --config`, `check`): YAML through Yams, the
/// unknown-key check, decoding into `Configuration`, paths made absolute. The issue asks for
/// the data-file parsers; there are no data files yet, so the config file stands in for them.
/// `Configuration.swift` here is a symlink to Sources/Host/Configuration.swift: the Host
/// executable cannot be imported, and the loader needs nothing else from it.
/// Input: the file's bytes (written to a temporary file: `load(path:)` is what runs).
/// Checks: loading never traps, and fails only with ConfigError (naming the file); a loaded
/// configuration has every path absolute (a policy may also be a bare shipped name).
enum ConfigFuzz {
    static let path: String = {
        let path = NSTemporaryDirectory() + "bootpolicy-configfuzz-\(getpid()).yaml"
        atexit { unlink(NSTemporaryDirectory() + "bootpolicy-configfuzz-\(getpid()).yaml") }
        return path
    }()

    static func run(_ input: [UInt8]) {
        guard FileManager.default.createFile(atPath: path, contents: Data(input)) else {
            fuzzCheck(false, "cannot write \(path)")
            return
        }
        do {
            let config = try Configuration.load(path: path)
            for p in [config.tftp.root, config.http.root, config.api.tokens] {
                if let p { fuzzCheck(p.hasPrefix("/"), "path \(p) not made absolute") }
            }
            // A policy is a path (made absolute) or a bare name with no such file beside the
            // config, which names a shipped policy and is kept as written.
            for p in config.policies.map(\.file) {
                fuzzCheck(p.hasPrefix("/") || !p.contains("/"), "policy path \(p) not made absolute")
            }
        } catch let error as ConfigError {
            fuzzCheck(error.description.hasPrefix(path), "an error that does not name the file: \(error)")
        } catch {
            fuzzCheck(false, "load threw \(type(of: error)), not ConfigError: \(error)")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ConfigFuzz.run(fuzzBytes(data, size))
    return 0
}

#if !FUZZING
@main enum Replay { static func main() { FuzzReplay.main(ConfigFuzz.run) } }
#endif
