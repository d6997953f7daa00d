import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Who `bootpolicy serve` runs as.
///
/// Started as root, it gives root up before it opens a socket, a database or a policy, and
/// keeps only the two capabilities a boot server needs: `CAP_NET_BIND_SERVICE` for ports 67,
/// 69 and 4011, and `CAP_NET_RAW` for `SO_BINDTODEVICE` (`--interface`) and the ICMP echo
/// before an offer. dnsmasq does the same with its `--user` (default `nobody`), keeping
/// `CAP_NET_ADMIN` and `CAP_NET_RAW`.
///
/// Why at the very start and by re-executing, not after the bind: capabilities belong to
/// threads, and by the time the listeners are bound the event loops, the DHCP receive threads
/// and Swift's own pool are running, each with a copy of root's. glibc changes the uid of every
/// thread at once but nothing changes their capabilities at once. So the process switches uid
/// and raises the kept capabilities into the ambient set, then execs itself: the new image
/// starts with one thread that is already the user with exactly those capabilities, and every
/// thread it makes inherits them. Nothing, not the first packet nor the first byte of a config,
/// is read as root after that; the config file, policies, roots and state must be readable
/// (the state writable) by the user, exactly what SIGHUP, which rereads them, needs anyway.
enum Privileges {
    /// Set across the exec: the user root was given up for.
    static let marker = "BOOTPOLICY_GAVE_UP_ROOT"

    /// The capabilities kept: number and the name `getpcaps` and systemd use.
    static let kept: [(number: Int, name: String)] = [(10, "cap_net_bind_service"), (13, "cap_net_raw")]

    /// How this process came to run as who it is, for the startup log.
    enum Standing: Equatable {
        /// Started by an unprivileged user (or systemd's User=): nothing to give up.
        case unprivileged
        /// Root, kept on request (`--user root`).
        case keptRoot
        /// Root was given up for this user before this image started.
        case gaveUpRoot(user: String)
    }

    struct Account: Equatable {
        var name: String
        var uid: uid_t
        var gid: gid_t
    }

    /// The account named, or by default `bootpolicy` if it exists, else `nobody`.
    static func account(named name: String?) throws -> Account {
        if let name {
            guard let account = lookup(name) else {
                throw ConfigError("--user \(name): no such user (give an existing account, or --user root to keep root)")
            }
            return account
        }
        if let account = lookup("bootpolicy") ?? lookup("nobody") { return account }
        throw ConfigError("neither a 'bootpolicy' nor a 'nobody' user exists to give root up for: create one, or give --user NAME (--user root keeps root)")
    }

    static func lookup(_ name: String) -> Account? {
        guard let entry = getpwnam(name) else { return nil }
        return Account(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// The first thing `serve` does. Not root: `.unprivileged`. Root with `user` "root":
    /// `.keptRoot`. Root otherwise: becomes the user and execs this binary again with the same
    /// arguments, and does not return; the new image finds the marker and gets
    /// `.gaveUpRoot`.
    static func settle(user: String?) throws -> Standing {
        let environment = ProcessInfo.processInfo.environment
        if let from = environment[marker] {
            unsetenv(marker)
            // The exec happened and still root: the kernel refused the change without saying
            // so (a user namespace mapping everyone to 0). Better to stop than to serve as root.
            guard geteuid() != 0 else {
                throw ConfigError("gave root up for user \(from) but still run as uid 0; refusing to serve (--user root keeps root on purpose)")
            }
            // Only our own exec says so: a marker inherited from elsewhere is not believed.
            if let account = lookup(from), account.uid == geteuid() { return .gaveUpRoot(user: from) }
            return .unprivileged
        }
        guard geteuid() == 0 else { return .unprivileged }
        if user == "root" { return .keptRoot }
        let account = try account(named: user)
        guard account.uid != 0 else {
            throw ConfigError("--user \(account.name) has uid 0; give --user root to keep root on purpose")
        }
        let mask = kept.reduce(UInt64(0)) { $0 | (1 << UInt64($1.number)) }
        var step: UnsafePointer<CChar>?
        if clinux_become_user(account.uid, account.gid, mask, &step) != 0 {
            let call = step.map { String(cString: $0) } ?? "?"
            throw ConfigError("cannot give root up for user \(account.name) (uid \(account.uid)): \(call): \(String(cString: strerror(errno)))"
                              + " (--user root keeps root: in a rootless container, root is already unprivileged on the host)")
        }
        var env = environment
        env[marker] = account.name
        try exec(environment: env)
    }

    /// Replaces this image with /proc/self/exe, same arguments: returns only by throwing.
    static func exec(environment: [String: String]) throws -> Never {
        let arguments = CommandLine.arguments
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        execve("/proc/self/exe", argv, envp)
        let reason = String(cString: strerror(errno))
        throw ConfigError("gave root up but could not start again as the new user: execve(/proc/self/exe): \(reason)")
    }

    /// The effective capabilities by name, e.g. "cap_net_bind_service,cap_net_raw" ("none").
    static func effectiveCapabilities() -> String {
        let mask = clinux_effective_capabilities()
        if mask == .max { return "unknown" }
        if mask == 0 { return "none" }
        let names = Dictionary(uniqueKeysWithValues: kept.map { ($0.number, $0.name) })
        return (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map { names[$0] ?? "cap_\($0)" }.joined(separator: ",")
    }

    /// The startup line: who serves, with which capabilities.
    static func describe(_ standing: Standing) -> (warning: Bool, text: String) {
        let who = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
        switch standing {
        case .unprivileged:
            return (false, "running as \(who) (uid \(geteuid())), capabilities: \(effectiveCapabilities())")
        case .keptRoot:
            return (true, "running as root (--user root): a flaw in a parser or a policy would be root's; without --user root serve gives root up for 'bootpolicy' (else 'nobody') at start")
        case .gaveUpRoot(let user):
            return (false, "gave up root for user \(user) (uid \(geteuid()), gid \(getegid())) before opening anything; capabilities kept: \(effectiveCapabilities())")
        }
    }
}
