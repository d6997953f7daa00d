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

#endif
