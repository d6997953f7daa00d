import Foundation

/// Resolves a client-supplied path inside a root directory, refusing every way out:
/// `..` components, absolute paths that leave the root, symlinks that point outside,
/// and anything that is not a regular file (devices, FIFOs, directories).
public enum SafePath {
    public struct Resolved: Sendable, Equatable {
        public var path: String
        public var size: Int
    }

    public enum Refusal: Error, Equatable, Sendable {
        case notFound, escapesRoot, notRegularFile, unreadable

        public var message: String {
            switch self {
            case .notFound: return "file not found"
            case .escapesRoot: return "access violation: path leaves the root"
            case .notRegularFile: return "access violation: not a regular file"
            case .unreadable: return "access violation: file not readable"
            }
        }
    }

    /// `requested` may start with "/" (TFTP and HTTP clients send it); it is taken as relative
    /// to `root`. Backslashes count as separators, as some PXE ROMs send them.
    public static func resolve(_ requested: String, under root: String) -> Result<Resolved, Refusal> {
        let components = requested.replacingOccurrences(of: "\\", with: "/").split(separator: "/")
        var clean: [Substring] = []
        for c in components {
            if c == "." || c.isEmpty { continue }
            if c == ".." { return .failure(.escapesRoot) }
            if c.contains("\0") { return .failure(.escapesRoot) }
            clean.append(c)
        }
        guard let realRoot = realpath(root) else { return .failure(.notFound) }
        let joined = clean.isEmpty ? realRoot : realRoot + "/" + clean.joined(separator: "/")
        guard let real = realpath(joined) else { return .failure(.notFound) }
        guard real == realRoot || real.hasPrefix(realRoot.hasSuffix("/") ? realRoot : realRoot + "/") else {
            return .failure(.escapesRoot)
        }
        var st = stat()
        guard stat(real, &st) == 0 else { return .failure(.notFound) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure(.notRegularFile) }
        guard access(real, R_OK) == 0 else { return .failure(.unreadable) }
        return .success(Resolved(path: real, size: Int(st.st_size)))
    }

    private static func realpath(_ path: String) -> String? {
        guard let p = Foundation.realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
