import NIOCore

/// Runs a task's jobs on one NIO event loop instead of Swift's cooperative pool.
///
/// The PostgreSQL store calls async PostgresNIO code from the state writer's thread and waits
/// for it. On the cooperative pool (one thread per CPU) that wait could never end when the
/// pool's threads are all blocked elsewhere; two CPUs are enough to see it. The store's own
/// event loop is always free to run its work.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
