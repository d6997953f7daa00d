#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A directory served to clients (the TFTP root, the HTTP root), and the only way a requested
/// name becomes an open file.
/// A name is taken as relative to the root (leading "/" stripped, "\" read as "/"), may not
/// contain "..", is resolved with realpath (symlinks followed) and must land inside the root
/// on a regular file. The file is opened non-blocking and checked with fstat on the open
/// descriptor, so a FIFO cannot hang the server and a swapped path cannot slip past the check.
public struct ConfinedRoot: Sendable {
    /// The root after realpath.
    public let path: String

    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case notFound(String)
        case accessViolation(String)
        /// The server, not the file: out of descriptors or memory. The client should retry.
        case busy(String)

        public var message: String {
            switch self {
            case .notFound: return "File not found"
            case .accessViolation(let why): return "Access violation: \(why)"
            case .busy(let why): return "Server busy: \(why), try again later"
            }
        }

        public var description: String { message }
    }

    public struct NotADirectory: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "root '\(path)' is not an existing directory" }
    }

    public init(path: String) throws {
        guard let real = Self.realPath(path) else { throw NotADirectory(path: path) }
        var info = stat()
        guard stat(real, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { throw NotADirectory(path: path) }
        self.path = real == "/" ? "" : real
    }

    /// The normalised relative name for a request, or a refusal for names that try to escape.
    public static func relativeName(_ requested: String) -> Result<String, Refusal> {
        // The kernel reads a path up to its first NUL: "a.txt\0.png" would open a.txt.
        if requested.utf8.contains(0) { return .failure(.accessViolation("a NUL byte in the name")) }
        var components: [Substring] = []
        for component in requested.split(separator: "/", omittingEmptySubsequences: true)
            .flatMap({ $0.split(separator: "\\", omittingEmptySubsequences: true) }) {
            if component == "." { continue }
            if component == ".." { return .failure(.accessViolation("'..' is not allowed")) }
            components.append(component)
        }
        guard !components.isEmpty else { return .failure(.notFound(requested)) }
        return .success(components.joined(separator: "/"))
    }

    /// Resolves and opens a request name. The caller owns the returned file.
    public func open(_ requested: String) -> Result<ConfinedFile, Refusal> {
        let relative: String
        switch Self.relativeName(requested) {
        case .success(let name): relative = name
        case .failure(let refusal): return .failure(refusal)
        }
        let candidate = path + "/" + relative
        guard let real = Self.realPath(candidate) else {
            let err = errno
            if err == EACCES { return .failure(.accessViolation("permission denied")) }
            return .failure(.notFound(requested))
        }
        guard real.hasPrefix(path + "/") else { return .failure(.accessViolation("outside the root")) }
        let fd = systemOpen(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT { return .failure(.notFound(requested)) }
            // 21,000 idle HTTP connections used every descriptor, and TFTP clients were told
            // "Access violation": the file was fine, the server was not.
            if err == EMFILE || err == ENFILE || err == ENOMEM {
                return .failure(.busy(err == ENOMEM ? "out of memory" : "out of file descriptors (\(err == EMFILE ? "EMFILE" : "ENFILE"))"))
            }
            return .failure(.accessViolation("cannot open: \(String(cString: strerror(err)))"))
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(.accessViolation("not a regular file"))
        }
        return .success(ConfinedFile(descriptor: fd, size: UInt64(info.st_size), path: real))
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// An open regular file read with pread (no shared offset, safe from any thread). Closed when
/// the last reference goes.
public final class ConfinedFile: @unchecked Sendable {
    public let descriptor: CInt
    public let size: UInt64
    public let path: String

    init(descriptor: CInt, size: UInt64, path: String) {
        self.descriptor = descriptor
        self.size = size
        self.path = path
    }

    deinit { close(descriptor) }

    /// Reads up to `count` bytes at `offset` into `destination`; returns the bytes read (short at
    /// end of file), or -1 on an I/O error.
    func read(at offset: UInt64, count: Int, into destination: UnsafeMutableRawBufferPointer) -> Int {
        var done = 0
        while done < count {
            let n = pread(descriptor, destination.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            if n > 0 { done += n; continue }
            if n == 0 { break }
            if errno == EINTR { continue }
            return -1
        }
        return done
    }
}

private func systemOpen(_ path: String, _ flags: CInt) -> CInt {
    #if canImport(Glibc)
    return Glibc.open(path, flags)
    #elseif canImport(Musl)
    return Musl.open(path, flags)
    #else
    return Darwin.open(path, flags)
    #endif
}
