import ArgumentParser
import Foundation
import Logging
import LuaBridge
import Protocols

/// `bootpolicy test`: the policy tests (`*_test.lua`) that feed recorded requests through real
/// chains. Closing line `N passed, N failed`; exit 1 on any failure.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run policy tests (*_test.lua) against recorded requests; exit 1 on any failure.",
        discussion: "Each PATH is a test file or a directory searched (not recursively) for *_test.lua. Default: ./policies and ./examples."
    )

    @Argument(help: ArgumentHelp("Test files or directories.", valueName: "path"))
    var paths: [String] = []

    @Flag(name: .shortAndLong, help: "List every test, not only failures.")
    var verbose = false

    func run() throws {
        let fm = FileManager.default
        let targets = paths.isEmpty ? ["policies", "examples"].filter { fm.fileExists(atPath: $0) } : paths
        var files: [URL] = []
        for path in targets {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
                throw ExitMessage("bootpolicy test: \(path): no such file or directory")
            }
            let url = URL(fileURLWithPath: path).standardizedFileURL
            files += isDir.boolValue ? PolicyTestRunner.testFiles(in: url) : [url]
        }
        guard !files.isEmpty else { throw ExitMessage("bootpolicy test: no *_test.lua files in \(targets.joined(separator: ", "))") }

        var logger = Logger(label: "bootpolicy.test")
        logger.logLevel = .error
        let runner = PolicyTestRunner(logger: logger, loadFixture: { url in try Fixture.load(from: url).bootRequest() })
        let results = runner.run(files: files)
        for file in results {
            print("\(file.file): \(file.passed) passed, \(file.failed) failed")
            for test in file.tests where verbose || !test.passed {
                print("  \(test.passed ? "ok  " : "FAIL") \(test.name)")
                if let message = test.message, !test.passed {
                    for line in message.split(separator: "\n") { print("       \(line)") }
                }
            }
            if let error = file.error { print("  ERROR \(error)") }
        }
        print(PolicyTestRunner.summary(results))
        if results.contains(where: { $0.failed > 0 }) { throw ExitCode(1) }
    }
}
