import CLinux
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
/// contain "..", is resolved with symlinks followed and must land inside the root on a regular
/// file. The file is opened non-blocking and checked with fstat on the open descriptor, so a
/// FIFO cannot hang the server.
///
/// The kernel does the confinement: `openat2(RESOLVE_BENEATH)` under the root's own open
/// descriptor resolves the name and refuses any step out of the root in the one call that
/// opens it, so a symlink swapped in between a check and the open cannot slip out. That is
/// one system call where realpath cost one readlink per path component and a second walk to
/// open. A name it refuses (an absolute symlink, one that leaves the root and comes back) or a
/// kernel without openat2 goes the old way: realpath, the prefix check, then open.
///
/// The root is held open from `init`: the directory served is the one found at start, even if
/// its path is renamed or replaced later (its path was resolved at start before, too).
public struct ConfinedRoot: Sendable {
    /// The root after realpath.
    public let path: String
    private let directory: Directory

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
        self.directory = Directory(descriptor: systemOpen(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
    }

    /// The normalised relative name for a request, or a refusal for names that try to escape.
    public static func relativeName(_ requested: String) -> Result<String, Refusal> {
        // The kernel reads a path up to its first NUL: "a.txt\0.png" would open a.txt.
        if requested.utf8.contains(0) { return .failure(.accessViolation("a NUL byte in the name")) }
        // Split on bytes, as the kernel does, not on Characters: "/" or "\\" followed by a
        // combining mark is one grapheme, so a split by Character kept it inside a component
        // ("../\u{301}/etc" had no ".." component for us, but one for the kernel; the fuzzer
        // found it, and openat2 and the realpath check were what still held). An ASCII byte
        // never occurs inside a multi-byte UTF-8 sequence, so splitting there cuts no character.
        let slash = UInt8(ascii: "/"), backslash = UInt8(ascii: "\\"), dot = UInt8(ascii: ".")
        var components: [ArraySlice<UInt8>] = []
        for component in Array(requested.utf8).split(whereSeparator: { $0 == slash || $0 == backslash }) {
            if component.elementsEqual([dot]) { continue }
            if component.elementsEqual([dot, dot]) { return .failure(.accessViolation("'..' is not allowed")) }
            components.append(component)
        }
        guard !components.isEmpty else { return .failure(.notFound(requested)) }
        return .success(String(decoding: Array(components.joined(separator: [slash])), as: UTF8.self))
    }

    /// Resolves and opens a request name. The caller owns the returned file.
    public func open(_ requested: String) -> Result<ConfinedFile, Refusal> {
        let relative: String
        switch Self.relativeName(requested) {
        case .success(let name): relative = name
        case .failure(let refusal): return .failure(refusal)
        }
        let flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY
        if directory.descriptor >= 0 {
            let fd = clinux_open_beneath(directory.descriptor, relative, flags)
            if fd >= 0 { return Self.regularFile(fd, path: path + "/" + relative) }
            let err = errno
            // EXDEV: a step left the root (maybe to come back in); ELOOP: a symlink loop, or
            // too deep; ENOSYS: no openat2; EAGAIN: a rename raced the lookup. The slow path
            // decides those, as before; anything else is the answer.
            if ![EXDEV, ELOOP, ENOSYS, EAGAIN, EPERM, EINVAL].contains(err) { return .failure(Self.refusal(err, requested)) }
        }
        let candidate = path + "/" + relative
        guard let real = Self.realPath(candidate) else {
            let err = errno
            if err == EACCES { return .failure(.accessViolation("permission denied")) }
            return .failure(.notFound(requested))
        }
        // Bytes, like the split above: String.hasPrefix compares Characters, and a name that
        // begins with a combining mark joins the "/" before it into one.
        guard real.utf8.starts(with: (path + "/").utf8) else { return .failure(.accessViolation("outside the root")) }
        let fd = systemOpen(real, flags)
        guard fd >= 0 else { return .failure(Self.refusal(errno, requested)) }
        return Self.regularFile(fd, path: real)
    }

    /// Why a name could not be opened, from open's errno.
    private static func refusal(_ err: Int32, _ requested: String) -> Refusal {
        switch err {
        case ENOENT, ENOTDIR: return .notFound(requested)
        // 21,000 idle HTTP connections used every descriptor, and TFTP clients were told
        // "Access violation": the file was fine, the server was not.
        case EMFILE: return .busy("out of file descriptors (EMFILE)")
        case ENFILE: return .busy("out of file descriptors (ENFILE)")
        case ENOMEM: return .busy("out of memory")
        case EACCES: return .accessViolation("permission denied")
        default: return .accessViolation("cannot open: \(String(cString: strerror(err)))")
        }
    }

    /// `fd` if it is a regular file (checked on the descriptor, not the name), else closed.
    private static func regularFile(_ fd: CInt, path: String) -> Result<ConfinedFile, Refusal> {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(.accessViolation("not a regular file"))
        }
        return .success(ConfinedFile(descriptor: fd, size: UInt64(info.st_size), path: path))
    }

    /// The root's descriptor (O_PATH), closed with the last copy of the root.
    private final class Directory: Sendable {
        let descriptor: CInt
        init(descriptor: CInt) { self.descriptor = descriptor }
        deinit { if descriptor >= 0 { close(descriptor) } }
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
