import Foundation
import Testing
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
        if FileManager.default.fileExists(atPath: TFTPTestSupport.sharedRoot + "/nulldev") {
            #expect(root.open("nulldev").failureCode == .accessViolation)
        }
        #expect(root.open("missing").failureCode == .fileNotFound)
        #expect(root.open("/").failureCode == .fileNotFound)
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
