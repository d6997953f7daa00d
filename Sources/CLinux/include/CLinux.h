// Linux calls the Glibc module does not bring to Swift (epoll, pipe2, UDP_SEGMENT), wrapped so
// Swift never touches the packed epoll_event struct or its union.
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>

// UDP_SEGMENT (linux/udp.h): the UDP GSO segment size, per socket or per send.
#define CLINUX_UDP_SEGMENT 103

/// epoll_create1(EPOLL_CLOEXEC).
int clinux_epoll_create(void);
/// Adds `fd` for readability (level-triggered) with `tag` as its epoll data.
int clinux_epoll_add(int epoll, int fd, uint64_t tag);
/// epoll_wait: writes the tags of up to `max` ready descriptors; returns their count, or -1.
int clinux_epoll_wait(int epoll, uint64_t *tags, int max, int timeout_ms);
/// pipe2(fds, O_NONBLOCK | O_CLOEXEC).
int clinux_pipe(int fds[2]);
/// recvmmsg(2) of up to `slots` (at most 64) datagrams into `buffer`, one per `slot_size`
/// bytes, without waiting; their lengths go to `lengths`. Returns the count, or -1.
int clinux_receive_many(int fd, void *buffer, int slot_size, int slots, int *lengths);
/// One datagram of a receive batch. Addresses and ports in network byte order.
typedef struct {
    int length;
    /// The datagram was longer than its slot; the rest is lost.
    int truncated;
    /// AF_INET or AF_INET6 (the sender's address family), or 0 when it was neither.
    int family;
    /// AF_INET: the sender's address.
    uint32_t source;
    uint16_t source_port;
    /// IP_PKTINFO: the arrival interface (-1 when absent) and the header's destination address.
    int interface_index;
    uint32_t destination;
    /// AF_INET6: the sender's address and its scope (the link of a link-local one).
    uint8_t source6[16];
    uint32_t scope_id;
} clinux_datagram;

/// A receive batch: `slots` (1-64) buffers of `slot_size` bytes with their recvmmsg headers,
/// set up once and reused by one thread. NULL when out of memory or `slot_size` < 1.
typedef struct clinux_batch clinux_batch;
clinux_batch *clinux_batch_create(int slots, int slot_size);
void clinux_batch_free(clinux_batch *batch);
/// Slot `i`'s bytes, and what recvmmsg said about the datagram in it.
const void *clinux_batch_bytes(const clinux_batch *batch, int i);
const clinux_datagram *clinux_batch_datagram(const clinux_batch *batch, int i);
/// recvmmsg(2) of up to `slots` datagrams (at most the batch's) into the batch. With `wait`,
/// MSG_WAITFORONE: blocks for one datagram (up to the socket's SO_RCVTIMEO), then takes more
/// only if they are already queued. Without it, MSG_DONTWAIT. Returns the count, or -1 with
/// errno.
int clinux_batch_receive(clinux_batch *batch, int fd, int wait, int slots);
/// CLOCK_MONOTONIC in nanoseconds (vDSO, no system call).
uint64_t clinux_monotonic_ns(void);

/* CPU time the calling thread has used, in nanoseconds. */
uint64_t clinux_thread_cpu_ns(void);

/// One datagram to send: `length` bytes at `bytes`, to `address`:`port` (network order).
typedef struct {
    const void *bytes;
    int length;
    uint32_t address;
    uint16_t port;
} clinux_outgoing;
/// sendmmsg(2) of `count` datagrams (64 per call) with MSG_DONTWAIT, going on past one that
/// fails: `errors[i]` gets 0 or that datagram's errno. Returns how many failed.
int clinux_send_datagrams(int fd, const clinux_outgoing *datagrams, int count, int *errors);
/// One datagram to send over IPv6: to `address` (16 bytes) `port` (network order) on the
/// link `scope_id` (0: any).
typedef struct {
    const void *bytes;
    int length;
    uint8_t address[16];
    uint16_t port;
    uint32_t scope_id;
} clinux_outgoing6;
/// As clinux_send_datagrams, to IPv6 addresses, with `flags` (0 or MSG_DONTWAIT).
int clinux_send_datagrams6(int fd, const clinux_outgoing6 *datagrams, int count, int flags, int *errors);
/// Names the calling thread (first 15 bytes), as ps, top and perf show it.
void clinux_name_thread(const char *name);
/// Asks the scheduler for a short time slice for the calling thread (sched_setattr(2) with
/// SCHED_OTHER and `sched_runtime`, Linux 6.12+ EEVDF): an earlier virtual deadline, so a
/// thread that wakes for a packet runs sooner. Needs no privilege. Returns 0, or an errno
/// (EINVAL on kernels that do not take the hint).
int clinux_request_slice(uint64_t nanoseconds);
/// The calling thread's requested slice in nanoseconds (sched_getattr(2) `sched_runtime`), or
/// 0 when the kernel does not say.
uint64_t clinux_current_slice(void);

/* The calling thread runs only when no other thread wants the CPU (SCHED_IDLE): for work that
   must never slow answers (a shadow chain). 0 or errno. */
int clinux_idle_priority(void);

/* The calling thread's nice value (Linux: per thread). 0 or errno. */
int clinux_nice_thread(int nice);

/// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
int clinux_inotify_open(void);
/// Watches directory `dir` for files written, created, moved in or out, removed.
int clinux_inotify_watch_dir(int fd, const char *dir);
/// Waits up to `timeout_ms` for events and drains them: 1 when there were some, 0 on
/// timeout, -1 on error.
int clinux_inotify_wait(int fd, int timeout_ms);

/// openat2(2) of `path` under the directory `dirfd` with RESOLVE_BENEATH and
/// RESOLVE_NO_MAGICLINKS: the kernel resolves the whole name (symlinks included) in one call
/// and fails with EXDEV if any step would leave the directory. ENOSYS before Linux 5.6.
int clinux_open_beneath(int dirfd, const char *path, int flags);

/// Adds to `actions` (a posix_spawn_file_actions_t) the closing of every descriptor from
/// `from` up (posix_spawn_file_actions_addclosefrom_np, glibc 2.34+, hidden from Swift behind
/// _GNU_SOURCE): a spawned daemon then holds no pipe or socket of its parent's. 0 or an errno.
int clinux_spawn_close_from(void *actions, int from);


/// Gives up root for `uid`/`gid`, keeping only the capabilities whose numbers are set in
/// `keep` (bit n: CAP number n), raised in the ambient set so that they survive an execve(2).
/// In order: supplementary groups become {gid}, then the gids, the bounding set shrinks to
/// `keep`, then the uids (glibc applies each id change to every thread of the process), with
/// PR_SET_KEEPCAPS held across the uid change in the calling thread, then capset(2),
/// PR_CAP_AMBIENT_RAISE and PR_SET_NO_NEW_PRIVS. Returns 0, or -1 with errno and
/// `*step` naming the call that failed.
int clinux_become_user(uint32_t uid, uint32_t gid, uint64_t keep, const char **step);
/// The calling thread's effective capability set as a bit mask (bit n: CAP number n), or
/// UINT64_MAX when capget(2) fails.
uint64_t clinux_effective_capabilities(void);

/// The kernel's IPv6 neighbour table (an RTM_GETNEIGH dump over NETLINK_ROUTE, the table
/// `ip -6 neigh` shows): up to `max` entries written to `out` as 16 address bytes followed by
/// 6 MAC bytes each, only entries with an Ethernet link-layer address that are not incomplete
/// or failed. Returns the number written, or -errno. Needs no privilege.
int clinux_neighbours6(unsigned char *out, int max);

/// The commit a packaged build was made from (scripts/package.sh), "" for other builds.
const char *clinux_build_commit(void);

#endif
