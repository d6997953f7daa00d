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

    @Test(arguments: ["../etc/passwd", "/../../etc/passwd", "sub/../../x", "..", "a\\..\\..\\b",
                      // A separator followed by a combining mark is one Character but still a
                      // separator to the kernel (found by TFTPFuzz).
                      "../\u{301}/etc/passwd", "..\\\u{301}x", "sub/../\u{300}../x"])
    func refusesDotDot(_ requested: String) {
        guard case .failure(.accessViolation) = TFTPRoot.relativeName(requested) else {
            Issue.record("\(requested) was not refused"); return
        }
    }

    /// Names are split on bytes: a combining mark after a separator stays with what follows.
    @Test func splitsOnBytesNotCharacters() {
        #expect(TFTPRoot.relativeName("a/\u{301}b") == .success("a/\u{301}b"))
        #expect(TFTPRoot.relativeName("a\\\u{301}b") == .success("a/\u{301}b"))
        #expect(TFTPRoot.relativeName("/\u{301}") == .success("\u{301}"))
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

    /// Every kind of link, in a root of its own: relative links that stay inside are opened
    /// by the kernel's confined lookup (openat2), the others by the realpath path; both agree.
    @Test func linksInsideAreServedAndLinksOutAreNot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bp-root-links-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/root/sub/deeper", withIntermediateDirectories: true)
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: dir + "/root/file.bin"))
        try Data(repeating: 9, count: 33).write(to: URL(fileURLWithPath: dir + "/secret"))
        let links: [(String, String)] = [
            ("root/rel", "file.bin"), ("root/sub/up", "../file.bin"), ("root/sub/deeper/upup", "../../file.bin"),
            ("root/sub/chain", "up"), ("root/abs-inside", dir + "/root/file.bin"),
            ("root/rel-out", "../secret"), ("root/sub/rel-out2", "../../secret"), ("root/abs-out", dir + "/secret"),
            ("root/out-and-back", "../root/file.bin"), ("root/loop-a", "loop-b"), ("root/loop-b", "loop-a"),
            ("root/dirlink", "sub"), ("root/dangling", "nothing-here"),
        ]
        for (at, to) in links { try fm.createSymbolicLink(atPath: dir + "/" + at, withDestinationPath: to) }
        let root = try TFTPRoot(path: dir + "/root")
        for name in ["rel", "sub/up", "sub/deeper/upup", "sub/chain", "abs-inside", "out-and-back", "dirlink/up"] {
            guard case .success(let file) = root.open(name) else { Issue.record("\(name) was not served: \(root.open(name))"); continue }
            #expect(file.size == 100, "\(name)")
        }
        for name in ["rel-out", "sub/rel-out2", "abs-out", "dirlink/../../secret"] {
            #expect(root.open(name).failureCode == .accessViolation, "\(name): \(root.open(name))")
        }
        for name in ["loop-a", "dangling", "rel/x"] {
            #expect(root.open(name).failureCode == .fileNotFound, "\(name): \(root.open(name))")
        }
        // The directory found at start is the one served, whatever its path later names.
        try fm.moveItem(atPath: dir + "/root", toPath: dir + "/old")
        try fm.createDirectory(atPath: dir + "/root", withIntermediateDirectories: true)
        guard case .success(let moved) = root.open("file.bin") else { Issue.record("the renamed root's file"); return }
        #expect(moved.size == 100)
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
