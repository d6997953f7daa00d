import Foundation

/// Finds shipped policies by short name (`default`, `arch-aware`) and the policies folder of
/// an installed or development copy.
enum PolicyLocator {
    /// Where the shipped policies live: $BOOTPOLICY_POLICIES, then `../share/bootpolicy/policies`
    /// beside the executable, then a `policies/` folder above the executable (a source
    /// checkout's `.build/debug/bootpolicy`), then `./policies`.
    static func shippedDirectory() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["BOOTPOLICY_POLICIES"], fm.fileExists(atPath: env + "/default.lua") {
            return env
        }
        // The running image, not argv[0]: started through $PATH that is a bare "bootpolicy",
        // which would be looked for in the working directory.
        let image = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let exe = URL(fileURLWithPath: image).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        let share = dir.appendingPathComponent("../share/bootpolicy/policies").standardizedFileURL.path
        if fm.fileExists(atPath: share + "/default.lua") { return share }
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("policies").path
            if fm.fileExists(atPath: candidate + "/default.lua") { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let cwd = fm.currentDirectoryPath + "/policies"
        return fm.fileExists(atPath: cwd + "/default.lua") ? cwd : nil
    }

    /// A path to a policy file: an existing path as given, else a shipped policy by name.
    static func resolve(_ nameOrPath: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: nameOrPath) {
            return URL(fileURLWithPath: nameOrPath).standardizedFileURL.path
        }
        if !nameOrPath.contains("/"), let dir = shippedDirectory() {
            let name = nameOrPath.hasSuffix(".lua") ? nameOrPath : nameOrPath + ".lua"
            if fm.fileExists(atPath: dir + "/" + name) { return dir + "/" + name }
        }
        let shipped = shippedDirectory().map { dir in
            ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".lua") && !$0.hasSuffix("_test.lua") }.sorted().joined(separator: ", ")
        } ?? "none found"
        throw ConfigError("policy \(nameOrPath): no such file, and no shipped policy of that name (shipped: \(shipped))")
    }
}
