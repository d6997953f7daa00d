import Foundation
import Logging
import Metrics
import CLinux
import Protocols

/// One change to what is kept about a client, as the writer hands it to a backend.
public enum StateChange: Sendable, Equatable {
    case state(mac: String, ClientState)
    case clearState(mac: String)
    case script(mac: String, StoredScript)
    /// A full-DHCP lease (by address): written before the ACK that grants it leaves.
    case lease(Lease)
    /// A DHCPv6 IA_NA binding (by address), in the same table as DHCPv4's: written before
    /// the Reply that grants it leaves.
    case lease6(Lease6)

    /// Changes with the same key replace each other in the queue: only the newest is written.
    var key: String {
        switch self {
        case .state(let mac, _), .clearState(let mac): return "s/" + mac
        case .script(let mac, _): return "x/" + mac
        case .lease(let lease): return "l/" + lease.address.description
        case .lease6(let lease): return "l/" + lease.address.description
        }
    }
}

/// A generated iPXE script as it is kept between a client's DHCP and file requests.
public struct StoredScript: Sendable, Equatable {
    public var filename: String?
    public var text: String
    public var policy: String?
    public var stored: Date
    public init(filename: String?, text: String, policy: String?, stored: Date) {
        self.filename = filename
        self.text = text
        self.policy = policy
        self.stored = stored
    }
}

/// What a backend held at start.
public struct StoredClients: Sendable {
    public var states: [String: ClientState] = [:]
    public var scripts: [String: StoredScript] = [:]
    /// Full-DHCP leases, expired ones included (a client gets its last address back).
    public var leases: [Lease] = []
    /// DHCPv6 bindings, the same way.
    public var leases6: [Lease6] = []
    public init(states: [String: ClientState] = [:], scripts: [String: StoredScript] = [:], leases: [Lease] = []) {
        self.states = states
        self.scripts = scripts
        self.leases = leases
    }
}

/// Where client memory is made durable: SQLite (one server) or PostgreSQL (several sharing
/// one truth). `commit`, `sweep` and `probe` are called one at a time (by the writer thread,
/// or by a waiting caller when `callerMayCommit`); `load` runs once, before the first commit.
public protocol StateBackend: AnyObject, Sendable {
    /// For logs and the status page: `sqlite:/var/lib/bootpolicy/state.db`.
    var description: String { get }
    /// Everything live at `now`.
    func load(now: Date) throws -> StoredClients
    /// Writes every change in one transaction: all of them or none.
    func commit(_ changes: [StateChange]) throws
    /// Deletes rows that expired before `now` (state) or were stored before `scriptsBefore`.
    func sweep(now: Date, scriptsBefore: Date) throws
    /// A cheap check that the store answers again after a failed commit.
    func probe() throws
    /// A thread waiting for its changes may run the commit itself when no commit is under
    /// way (one call at a time still), saving two thread hand-offs per durable answer. Only
    /// for a backend whose commit is a plain blocking call on the caller's thread (SQLite);
    /// PostgreSQL's commit waits on its event loops, so its waiters leave it to the writer.
    var callerMayCommit: Bool { get }
    /// For a store several servers share: starts handing other servers' changes to
    /// `follower`. A store only this server writes has nothing to follow.
    func follow(_ follower: StateFollower)
    func close()
}

extension StateBackend {
    public func probe() throws {}
    public var callerMayCommit: Bool { false }
    public func follow(_ follower: StateFollower) {}
}

/// What a shared store's change feed tells a server's in-memory view.
public protocol StateFollower: AnyObject, Sendable {
    /// The rows of clients another server changed, as committed now (nil: no row any more).
    func remoteChanged(_ rows: [String: ClientState?])
    /// Every live row, after the feed (re)connected: changes missed meanwhile are in it.
    func remoteResync(_ all: [String: ClientState])
    /// The feed went down (writes are refused: they could not be shared) or came back.
    func remoteFeed(connected: Bool, reason: String?)
}

/// The thread that makes changes durable: it takes every change queued since its last commit
/// and commits them in one transaction (group commit), so the rate of durable changes is not
/// bounded by one disk sync each. A caller waits for its own changes with `wait(through:)`.
///
/// A queued change does not wake the writer; a caller that starts waiting does. So a server
/// thread that decides a batch of requests queues all their changes first and they go in one
/// commit (waking on the first change made commits of about two changes each under load).
/// Changes nobody waits for (expiry, scripts) are committed within `lingerLimit`.
///
/// A commit that fails (disk full, a locked or vanished file) keeps its changes queued, merged
/// under any newer ones, and is retried with a growing pause; waiters time out meanwhile and
/// so no answer claims a change that is not on disk.
final class StateWriter: @unchecked Sendable {
    let backend: StateBackend
    let backendDescription: String
    private let logger: Logger
    private let cond = NSCondition()
    private var pending: [String: StateChange] = [:]
    /// The batch being committed, by key: still uncommitted until its commit returns.
    private var inFlight: Set<String> = []
    /// Why the last commit failed; nil while commits succeed.
    private var failure: String?
    private var queued: UInt64 = 0
    private var committed: UInt64 = 0
    private var stopping = false
    /// Someone waits for a change not yet committed.
    private var flushWanted = false
    /// Callers of `whenCommitted` still waiting.
    private var waiters: [CommitWaiter] = []
    /// When the oldest change still queued was queued.
    private var oldestPending: Date?
    /// A commit or sweep is running (on the writer thread or a waiting caller's): the
    /// backend takes one call at a time.
    private var committing = false
    /// Threads asleep on `cond` for a commit to end (waiters, and the writer while a caller
    /// commits): a caller's commit wakes them; with none asleep it wakes nobody.
    private var sleepers = 0
    /// Until when the writer thread sleeps (nil while it works): a change queued after an
    /// idle spell wakes it only when that is later than the change's linger deadline.
    private var writerSleepsUntil: Date?
    /// From the backend: waiters may commit themselves (`StateBackend.callerMayCommit`).
    private let callerMayCommit: Bool
    /// The longest a change nobody waits for stays queued.
    static let lingerLimit: TimeInterval = 0.05
    /// Changes queued that wake the writer even with nobody waiting (bounds a batch).
    static let batchLimit = 4096
    /// `start` ran. (Not the Thread itself: it holds its closure, which holds the writer, so
    /// keeping it made a cycle that outlived the thread; LeakSanitizer found every writer
    /// a test opened still allocated at exit, with all it held.)
    private var started = false
    private let done = DispatchSemaphore(value: 0)
    private let sweepEvery: TimeInterval
    private let scriptTTL: TimeInterval
    private let commits = Counter(label: "bootpolicy_state_commits_total")
    private let changes = Counter(label: "bootpolicy_state_changes_total")
    private let failures = Counter(label: "bootpolicy_state_commit_failures_total")
    private let commitTime = Timer(label: "bootpolicy_state_commit_seconds")

    init(backend: StateBackend, scriptTTL: TimeInterval, sweepEvery: TimeInterval = 60, logger: Logger) {
        self.backend = backend
        self.backendDescription = backend.description
        self.callerMayCommit = backend.callerMayCommit
        self.scriptTTL = scriptTTL
        self.sweepEvery = sweepEvery
        self.logger = logger
    }

    func start() {
        let t = Thread { [self] in
            // Thread.name does not reach the kernel on Linux; top and perf show this name.
            clinux_name_thread("bp-state-writer")
            run()
        }
        started = true
        t.start()
    }

    /// Changes queued so far.
    var enqueued: UInt64 {
        cond.lock()
        defer { cond.unlock() }
        return queued
    }

    /// Queues `change` and returns its mark: waiting through it covers this change.
    func enqueueMarked(_ change: StateChange) -> UInt64 {
        cond.lock()
        defer { cond.unlock() }
        pending[change.key] = change
        queued += 1
        noteQueued()
        return queued
    }

    func enqueue(_ change: StateChange) {
        cond.lock()
        pending[change.key] = change
        queued += 1
        noteQueued()
        cond.unlock()
    }

    /// After a change is queued (the lock is held). The first change after an idle spell
    /// wakes the writer once, only so that it sleeps again until `lingerLimit` from now rather
    /// than until its next sweep: without it a change nobody waited for (a script, a DHCP
    /// RELEASE) stayed queued for up to `sweepEvery`, and a kill meanwhile lost it. It does not
    /// commit early, so commits still group. A writer already due back within the linger
    /// limit is left asleep (a caller that commits itself leaves it so, see `wait`).
    private func noteQueued() {
        if oldestPending == nil {
            let now = Date()
            oldestPending = now
            if let until = writerSleepsUntil, until > now.addingTimeInterval(Self.lingerLimit) { cond.broadcast() }
        } else if pending.count >= Self.batchLimit {
            cond.broadcast()
        }
    }

    /// Why the backend cannot take writes now (its last commit failed), or nil.
    var unavailableReason: String? {
        cond.lock()
        defer { cond.unlock() }
        return failure
    }

    /// A change of this client's state is queued or being committed: what the backend holds
    /// for it is older than what memory holds.
    func hasUncommitted(mac: String) -> Bool {
        let key = "s/" + mac
        cond.lock()
        defer { cond.unlock() }
        return pending[key] != nil || inFlight.contains(key)
    }

    /// Blocks until every change up to `mark` is committed (true) or `timeout` passes (false).
    /// With a backend that allows it (`callerMayCommit`), a caller that finds no commit under
    /// way commits everything queued itself, other threads' changes included, and those
    /// threads wait for it (leader and followers: commits still group under load). At low
    /// rates that saves the wake-up of the writer and the wake-up back per durable answer,
    /// the p99 of a DHCP ACK. After a failed commit callers wait for the writer's retries.
    func wait(through mark: UInt64, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        while committed < mark {
            if callerMayCommit, !committing, failure == nil, !stopping, !pending.isEmpty {
                commitQueued(onWriter: false)
                continue
            }
            if !flushWanted && !(callerMayCommit && committing && failure == nil) {
                flushWanted = true
                cond.broadcast()
            }
            sleepers += 1
            let woke = cond.wait(until: deadline)
            sleepers -= 1
            if !woke { return committed >= mark }
        }
        return true
    }

    /// Takes every queued change and commits it in one transaction; called with the lock
    /// held and `committing` false, returns with it held. The lock is let go around the
    /// backend's call. On failure the changes go back under any newer ones and the writer is
    /// asked to retry (it keeps the pause between tries). True when the commit succeeded.
    @discardableResult
    private func commitQueued(onWriter: Bool) -> Bool {
        let batch = pending
        let through = queued
        inFlight = Set(batch.keys)
        pending = [:]
        oldestPending = nil
        flushWanted = false
        committing = true
        cond.unlock()

        let started = DispatchTime.now().uptimeNanoseconds
        var failed: Error?
        if !batch.isEmpty {
            do { try backend.commit(Array(batch.values)) } catch { failed = error }
        }
        var ready: [@Sendable (Bool) -> Void] = []
        if failed == nil, !batch.isEmpty {
            commitTime.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
            commits.increment()
            changes.increment(by: batch.count)
        } else if failed != nil {
            failures.increment()
        }

        cond.lock()
        committing = false
        inFlight = []
        if let failed {
            for (key, change) in batch where pending[key] == nil { pending[key] = change }
            failure = "\(failed)"
            if oldestPending == nil { oldestPending = Date() }
            if !onWriter { flushWanted = true }
            cond.broadcast()
            return false
        }
        committed = through
        failure = nil
        ready = satisfiedWaiters()
        // The writer commits for whoever asked it, so it always wakes them; a caller that
        // committed for itself wakes only threads asleep on a commit (none at low rates).
        // An empty batch changed nothing anyone waits for.
        if !batch.isEmpty && (onWriter || sleepers > 0) { cond.broadcast() }
        if !ready.isEmpty {
            cond.unlock()
            for done in ready { done(true) }
            cond.lock()
        }
        return true
    }

    /// Calls `done` once, from some thread, when every change up to `mark` is committed
    /// (true), or when `timeout` passed first (false). For callers that must not block a
    /// thread while they wait (the control API answers many writes at once this way, and
    /// they share commits).
    func whenCommitted(through mark: UInt64, timeout: TimeInterval, _ done: @escaping @Sendable (Bool) -> Void) {
        cond.lock()
        if committed >= mark {
            cond.unlock()
            done(true)
            return
        }
        let waiter = CommitWaiter(mark: mark, done: done)
        waiters.append(waiter)
        if !flushWanted {
            flushWanted = true
            cond.broadcast()
        }
        cond.unlock()
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [weak self] in
            guard let self else { return }
            self.cond.lock()
            let late = waiter.take()
            if late != nil { self.waiters.removeAll { $0 === waiter } }
            self.cond.unlock()
            late?(false)
        }
    }

    /// Takes the waiters that `committed` satisfies. Called with the lock.
    private func satisfiedWaiters() -> [@Sendable (Bool) -> Void] {
        guard !waiters.isEmpty else { return [] }
        var ready: [@Sendable (Bool) -> Void] = []
        waiters.removeAll { waiter in
            guard waiter.mark <= committed else { return false }
            if let done = waiter.take() { ready.append(done) }
            return true
        }
        return ready
    }

    /// Commits what is queued (bounded wait) and stops the thread.
    func close(timeout: TimeInterval = 5) {
        cond.lock()
        stopping = true
        cond.broadcast()
        cond.unlock()
        if started { _ = done.wait(timeout: .now() + timeout) }
        cond.lock()
        let ready = satisfiedWaiters(), left = waiters.compactMap { $0.take() }
        waiters = []
        cond.unlock()
        for done in ready { done(true) }
        for done in left { done(false) }
        backend.close()
    }

    private func run() {
        var nextSweep = Date().addingTimeInterval(sweepEvery)
        var pause: TimeInterval = 0.05
        var failing = false
        while true {
            cond.lock()
            while !stopping && !flushWanted && pending.count < Self.batchLimit {
                let now = Date()
                if now >= nextSweep { break }
                if let oldest = oldestPending, now.timeIntervalSince(oldest) >= Self.lingerLimit { break }
                let until = oldestPending.map { min(nextSweep, $0.addingTimeInterval(Self.lingerLimit)) } ?? nextSweep
                writerSleepsUntil = until
                _ = cond.wait(until: until)
                writerSleepsUntil = nil
            }
            // A caller is committing: what it took is its own; wait for it, then look again.
            while committing {
                sleepers += 1
                cond.wait()
                sleepers -= 1
            }
            let stop = stopping
            let ok = commitQueued(onWriter: true)
            let reason = failure
            cond.unlock()

            if ok {
                if failing { logger.notice("state store writes again", metadata: ["store": "\(backendDescription)"]) }
                failing = false
                pause = 0.05
            } else {
                if !failing {
                    logger.error("state store cannot commit; changes stay queued and answers that need them wait: \(reason ?? "")",
                                 metadata: ["store": "\(backendDescription)"])
                }
                failing = true
                if stop { break }
                Thread.sleep(forTimeInterval: pause)
                pause = min(1, pause * 2)
                continue
            }
            if stop { break }
            if Date() >= nextSweep {
                cond.lock()
                while committing {
                    sleepers += 1
                    cond.wait()
                    sleepers -= 1
                }
                committing = true
                cond.unlock()
                let t = Date()
                do { try backend.sweep(now: t, scriptsBefore: t.addingTimeInterval(-scriptTTL)) } catch {
                    logger.warning("state store sweep failed: \(error)", metadata: ["store": "\(backendDescription)"])
                }
                nextSweep = t.addingTimeInterval(sweepEvery)
                cond.lock()
                committing = false
                if sleepers > 0 { cond.broadcast() }
                cond.unlock()
            }
        }
        done.signal()
    }
}

/// One `whenCommitted` caller: told exactly once, by the commit or by its timeout.
private final class CommitWaiter: @unchecked Sendable {
    let mark: UInt64
    private var done: (@Sendable (Bool) -> Void)?
    init(mark: UInt64, done: @escaping @Sendable (Bool) -> Void) {
        self.mark = mark
        self.done = done
    }
    /// The callback, the first time; nil after. Called with the writer's lock.
    func take() -> (@Sendable (Bool) -> Void)? {
        defer { done = nil }
        return done
    }
}

/// Leases through a state writer: queued like any change, durable when its commit returns.
struct WriterLeaseJournal: LeaseJournal {
    let writer: StateWriter
    /// As long as a policy's state may take (`ClientStateStore.waitDurable`): past it the ACK
    /// is withheld and the client retries.
    static let timeout: TimeInterval = 2

    func record(_ lease: Lease) -> UInt64 { writer.enqueueMarked(.lease(lease)) }
    func awaitDurable(through mark: UInt64) -> Bool { writer.wait(through: mark, timeout: Self.timeout) }
    var location: String { writer.backendDescription }
    /// A shared store (PostgreSQL) decides grants itself; SQLite leaves it to the pool.
    func claim(_ lease: Lease, now: Date) -> LeaseClaim? { (writer.backend as? SharedLeaseStore)?.claim(lease, now: now) }
}

/// DHCPv6 bindings through a state writer, as `WriterLeaseJournal`; with PostgreSQL claimed
/// in the shared table like DHCPv4 leases, so servers whose ranges overlap never bind one
/// address to two clients.
struct WriterLease6Journal: Lease6Journal {
    let writer: StateWriter
    func record(_ lease: Lease6) -> UInt64 { writer.enqueueMarked(.lease6(lease)) }
    func awaitDurable(through mark: UInt64) -> Bool { writer.wait(through: mark, timeout: WriterLeaseJournal.timeout) }
    func claim(_ lease: Lease6, now: Date) -> Lease6Claim? { (writer.backend as? SharedLeaseStore)?.claim6(lease, now: now) }
}

/// A store several servers hand out addresses from: it grants a lease only when no other
/// client holds the address there.
public protocol SharedLeaseStore: AnyObject, Sendable {
    func claim(_ lease: Lease, now: Date) -> LeaseClaim
    /// The same for a DHCPv6 binding (the same table, keyed by address).
    func claim6(_ lease: Lease6, now: Date) -> Lease6Claim
    /// Hands `apply` the leases other servers claim, as they commit them.
    func followLeases(_ apply: @escaping @Sendable ([Lease]) -> Void)
    /// The same for DHCPv6 bindings.
    func followLeases6(_ apply: @escaping @Sendable ([Lease6]) -> Void)
}
