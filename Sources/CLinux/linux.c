#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int clinux_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int clinux_epoll_add(int epoll, int fd, uint64_t tag) {
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = tag };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int clinux_epoll_wait(int epoll, uint64_t *tags, int max, int timeout_ms) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int ready = epoll_wait(epoll, events, max, timeout_ms);
    for (int i = 0; i < ready; i++) tags[i] = events[i].data.u64;
    return ready;
}

int clinux_pipe(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

void clinux_name_thread(const char *name) {
    char shortened[16];
    strncpy(shortened, name, sizeof shortened - 1);
    shortened[sizeof shortened - 1] = 0;
    pthread_setname_np(pthread_self(), shortened);
}

/* struct sched_attr from linux/sched/types.h, spelled out: older headers lack it. */
struct clinux_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

int clinux_request_slice(uint64_t nanoseconds) {
    struct clinux_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = 0; /* SCHED_OTHER */
    attr.sched_nice = getpriority(PRIO_PROCESS, 0);
    attr.sched_runtime = nanoseconds;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return errno;
    return 0;
}

uint64_t clinux_current_slice(void) {
    struct clinux_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0) != 0) return 0;
    return attr.sched_runtime;
}

int clinux_receive_many(int fd, void *buffer, int slot_size, int slots, int *lengths) {
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    if (slots > 64) slots = 64;
    for (int i = 0; i < slots; i++) {
        vectors[i].iov_base = (char *)buffer + (size_t)i * slot_size;
        vectors[i].iov_len = slot_size;
        memset(&messages[i].msg_hdr, 0, sizeof messages[i].msg_hdr);
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    int count = recvmmsg(fd, messages, slots, MSG_DONTWAIT, NULL);
    for (int i = 0; i < count; i++) lengths[i] = (int)messages[i].msg_len;
    return count;
}
