import Foundation

/// What every fuzz target shares: the replay driver of the normal build, the invariant check,
/// and a reader that turns fuzz bytes into fields.

/// The normal build's main: runs each file named on the command line (every file of a named
/// directory) through `body`, the same function libFuzzer calls. A crash input from
/// artifacts/fuzz/ reproduces with `.build/debug/DHCPFuzz artifacts/fuzz/crash-...`.
public enum FuzzReplay {
    public static func main(_ body: ([UInt8]) -> Void) -> Never {
        let args = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }
        if args.isEmpty {
            let name = (CommandLine.arguments.first as NSString?)?.lastPathComponent ?? "fuzzer"
            FileHandle.standardError.write(Data("""
                usage: \(name) FILE|DIR...
                Replays inputs through the fuzz target (the libFuzzer binary itself is built by
                scripts/fuzz.sh with -D FUZZING and --sanitize=fuzzer,address).

                """.utf8))
            exit(2)
        }
        var files: [String] = []
        for arg in args {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) else {
                FileHandle.standardError.write(Data("\(arg): no such file\n".utf8))
                exit(2)
            }
            if isDir.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []
                files += names.sorted().map { arg + "/" + $0 }
            } else {
                files.append(arg)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            print("running \(file) (\(data.count) bytes)")
            body([UInt8](data))
        }
        print("ran \(files.count) inputs, no failure")
        exit(0)
    }
}

/// Fails the run (libFuzzer records the input as a crash) when an invariant does not hold.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        FileHandle.standardError.write(Data("fuzz invariant failed at \(file):\(line): \(message())\n".utf8))
        abort()
    }
}

/// Copies libFuzzer's input into an array.
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Reads fields from fuzz bytes front to back; past the end everything reads as zero/empty, so
/// every input is a valid (if dull) sequence of fields.
public struct FuzzReader {
    public let bytes: [UInt8]
    public private(set) var index = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init<S: Sequence<UInt8>>(_ bytes: S) { self.bytes = Array(bytes) }

    public var isAtEnd: Bool { index >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }
    public mutating func bool() -> Bool { byte() & 1 == 1 }
    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    public mutating func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }
    /// A value in 0..<count (0 when count is 0).
    public mutating func choose(_ count: Int) -> Int { count <= 0 ? 0 : Int(byte()) % count }
    public mutating func pick<T>(_ values: [T]) -> T { values[choose(values.count)] }
    /// A length byte, then that many bytes (at most `max`).
    public mutating func data(max: Int = 255) -> [UInt8] {
        let n = min(Int(byte()), max, bytes.count - min(index, bytes.count))
        defer { index += n }
        return Array(bytes[index..<index + n])
    }
    /// `data`, read as UTF-8 (invalid sequences repaired, as Swift does for wire strings).
    public mutating func string(max: Int = 255) -> String { String(decoding: data(max: max), as: UTF8.self) }
    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        defer { index = bytes.count }
        return index < bytes.count ? Array(bytes[index...]) : []
    }
}
