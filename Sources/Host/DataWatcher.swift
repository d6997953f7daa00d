import CLinux
import Foundation
import Logging
import LuaBridge
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Reloads the chain when a data file changes on disk (the `data:` files of the configuration),
/// as SIGHUP would: all or nothing, so a broken edit keeps the running data and logs where it
/// is broken (`machines.yaml:12:5: ...`).
///
/// inotify watches each file's directory (editors save by writing a new file and renaming it
/// over the old one, which a watch on the file itself would lose); any event there is followed
/// by a short settle and a look at each file's identity (device, inode, size, mtime), so only
/// a real change reloads. Where inotify cannot be had, the same look runs every second.
final class DataWatcher: Service, CustomStringConvertible, @unchecked Sendable {
    var description: String { "DataWatcher" }

    private struct Watched {
        var paths: [String] = []
        var signatures: [String: String] = [:]
        var dirsAdded: Set<String> = []
        var dirty = true
    }

    private let watched = NIOLockedValueBox(Watched())
    private let stopped = NIOLockedValueBox(false)
    private let reload: @Sendable (String) -> Void
    private let logger: Logger
    /// After the first event, how long more events are waited for before looking.
    static let settle: TimeInterval = 0.15

    init(paths: [String], logger: Logger, reload: @escaping @Sendable (String) -> Void) {
        self.reload = reload
        self.logger = logger
        watch(paths)
    }

    /// The files to watch from now on (called again after each reload: the config may name
    /// other files). Their current state is the baseline.
    func watch(_ paths: [String]) {
        let sigs = Dictionary(paths.map { ($0, Self.signature($0)) }, uniquingKeysWith: { a, _ in a })
        watched.withLockedValue { w in
            w.paths = paths
            w.signatures = sigs
            w.dirty = true
        }
    }

    func run() async throws {
        let thread = Thread { [self] in loop() }
        thread.name = "bootpolicy-data-watch"
        thread.start()
        try? await gracefulShutdown()
        stopped.withLockedValue { $0 = true }
    }

    private func loop() {
        let fd = clinux_inotify_open()
        if fd < 0 { logger.warning("data files: inotify unavailable (errno \(errno)); looking for changes every second instead") }
        defer { if fd >= 0 { close(fd) } }
        while !stopped.withLockedValue({ $0 }) {
            let dirs: [String]? = watched.withLockedValue { w in
                guard w.dirty else { return nil }
                w.dirty = false
                return Set(w.paths.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }).subtracting(w.dirsAdded).sorted()
            }
            if fd >= 0, let dirs {
                for dir in dirs {
                    if clinux_inotify_watch_dir(fd, dir) >= 0 {
                        watched.withLockedValue { _ = $0.dirsAdded.insert(dir) }
                    } else {
                        logger.warning("data files: cannot watch \(dir) (errno \(errno)); changes there need SIGHUP")
                    }
                }
            }
            if watched.withLockedValue({ $0.paths.isEmpty }) {
                Thread.sleep(forTimeInterval: 0.25)
                continue
            }
            if fd >= 0 {
                // Short waits so shutdown is seen within a quarter second.
                guard clinux_inotify_wait(fd, 250) > 0 else { continue }
                Thread.sleep(forTimeInterval: Self.settle)
                _ = clinux_inotify_wait(fd, 0)
            } else {
                Thread.sleep(forTimeInterval: 1)
            }
            let changed: [String] = watched.withLockedValue { w in
                var out: [String] = []
                for path in w.paths {
                    let now = Self.signature(path)
                    if w.signatures[path] != now {
                        w.signatures[path] = now
                        out.append(path)
                    }
                }
                return out
            }
            guard !changed.isEmpty, !stopped.withLockedValue({ $0 }) else { continue }
            let names = changed.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", ")
            logger.info("data file changed: \(names); reloading")
            reload("data file \(names) changed")
        }
    }

    /// Identity of a file's current content as far as stat tells: a new file renamed over the
    /// old one has a new inode; a write in place changes mtime or size.
    static func signature(_ path: String) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { return "missing" }
        return "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    /// One line per data set: rows and what a state's copy costs.
    static func logLoaded(_ chain: PolicyChain, logger: Logger) {
        let data = chain.data
        guard !data.sources.isEmpty else { return }
        let sets = data.sources.map { "\($0.name) (\(data.entries[$0.name] ?? 0) entries from \(URL(fileURLWithPath: $0.path).lastPathComponent))" }
        logger.notice("data loaded: \(sets.joined(separator: ", ")); \(chain.dataBytesPerState / 1024) KiB in each of \(chain.limits.states) Lua states")
        Gauge(label: "bootpolicy_data_bytes").record(chain.dataBytesPerState * chain.limits.states)
    }
}
