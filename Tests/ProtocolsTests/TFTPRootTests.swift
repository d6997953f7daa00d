import Foundation
import Testing
import TestSupport
@testable import Protocols

@Suite struct TFTPRootTests {
    let root = try! TFTPRoot(path: TFTPTestSupport.sharedRoot)

    @Test(arguments: [("/b511.bin", "b511.bin"), ("b511.bin", "b511.bin"), ("//sub//inner.bin", "sub/inner.bin"),
                      ("sub\\inner.bin", "sub/inner.bin"), ("./sub/./inner.bin", "sub/inner.bin")])
    func normalisesNames(_ requested: String, _ expected: String) {
        #expect(TFTPRoot.relativeName(requested) == .success(expected))
    }

    @Test(arguments: ["../etc/passwd", "/../../etc/passwd", "sub/../../x", "..", "a\\..\\..\\b"])
    func refusesDotDot(_ requested: String) {
        guard case .failure(.accessViolation) = TFTPRoot.relativeName(requested) else {
            Issue.record("\(requested) was not refused"); return
        }
    }

    @Test func opensRegularFilesAndInsideLinks() throws {
        guard case .success(let file) = root.open("/b511.bin") else { Issue.record("b511"); return }
        #expect(file.size == 511)
        guard case .success(let linked) = root.open("inside-link") else { Issue.record("inside-link"); return }
        #expect(linked.size == 511)
    }

    @Test func refusesEscapesAndSpecialFiles() {
        #expect(root.open("/etc/passwd").failureCode == .fileNotFound)
        #expect(root.open("escape").failureCode == .accessViolation)
        #expect(root.open("sub").failureCode == .accessViolation)
        #expect(root.open("fifo").failureCode == .accessViolation)
        #expect(root.open("missing").failureCode == .fileNotFound)
        #expect(root.open("/").failureCode == .fileNotFound)
    }

    /// A device node (made by mknod, which needs root) is no file to serve.
    @Test(.requires(.root(for: "mknod of the test root's device node")))
    func refusesADeviceNode() throws {
        try #require(FileManager.default.fileExists(atPath: TFTPTestSupport.sharedRoot + "/nulldev"), "mknod of nulldev failed as root")
        #expect(root.open("nulldev").failureCode == .accessViolation)
    }

    @Test func rootMustBeADirectory() {
        #expect(throws: TFTPRoot.NotADirectory.self) { try TFTPRoot(path: TFTPTestSupport.sharedRoot + "/b511.bin") }
        #expect(throws: TFTPRoot.NotADirectory.self) { try TFTPRoot(path: "/nonexistent-bp-tftp") }
    }
}

extension Result where Failure == TFTPRoot.Refusal {
    var failureCode: TFTPErrorCode? {
        if case .failure(let refusal) = self { return refusal.code }
        return nil
    }
}
