#define _GNU_SOURCE
#include "CLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <poll.h>
#include <linux/openat2.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>

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

int clinux_nice_thread(int nice) {
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) != 0) return errno;
    return 0;
}

int clinux_idle_priority(void) {
    struct clinux_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = 5; /* SCHED_IDLE */
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

struct clinux_batch {
    int slots;
    int slot_size;
    char *bytes;
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    /* Room for either family's address: an IPv4 socket's sender fills the sockaddr_in part. */
    struct sockaddr_in6 names[64];
    /* cmsghdr + in_pktinfo, with room to spare, per datagram. */
    uint64_t control[64][8];
    clinux_datagram datagrams[64];
};

clinux_batch *clinux_batch_create(int slots, int slot_size) {
    if (slot_size < 1) return NULL;
    if (slots < 1) slots = 1;
    if (slots > 64) slots = 64;
    clinux_batch *batch = calloc(1, sizeof *batch);
    if (!batch) return NULL;
    batch->bytes = malloc((size_t)slots * (size_t)slot_size);
    if (!batch->bytes) {
        free(batch);
        return NULL;
    }
    batch->slots = slots;
    batch->slot_size = slot_size;
    for (int i = 0; i < slots; i++) {
        batch->vectors[i].iov_base = batch->bytes + (size_t)i * (size_t)slot_size;
        batch->vectors[i].iov_len = (size_t)slot_size;
        batch->messages[i].msg_hdr.msg_iov = &batch->vectors[i];
        batch->messages[i].msg_hdr.msg_iovlen = 1;
        batch->messages[i].msg_hdr.msg_name = &batch->names[i];
        batch->messages[i].msg_hdr.msg_control = batch->control[i];
    }
    return batch;
}

void clinux_batch_free(clinux_batch *batch) {
    if (!batch) return;
    free(batch->bytes);
    free(batch);
}

const void *clinux_batch_bytes(const clinux_batch *batch, int i) { return batch->vectors[i].iov_base; }

const clinux_datagram *clinux_batch_datagram(const clinux_batch *batch, int i) { return &batch->datagrams[i]; }

int clinux_batch_receive(clinux_batch *batch, int fd, int wait, int slots) {
    if (slots < 1) slots = 1;
    if (slots > batch->slots) slots = batch->slots;
    /* The kernel overwrites the lengths it fills in; only those need resetting. */
    for (int i = 0; i < slots; i++) {
        batch->messages[i].msg_hdr.msg_namelen = sizeof batch->names[i];
        batch->messages[i].msg_hdr.msg_controllen = sizeof batch->control[i];
    }
    int count = recvmmsg(fd, batch->messages, (unsigned)slots, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
    for (int i = 0; i < count; i++) {
        struct msghdr *h = &batch->messages[i].msg_hdr;
        clinux_datagram *d = &batch->datagrams[i];
        d->length = (int)batch->messages[i].msg_len;
        d->truncated = (h->msg_flags & MSG_TRUNC) != 0;
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&batch->names[i];
        const struct sockaddr_in6 *v6 = &batch->names[i];
        d->family = 0;
        d->source = 0;
        d->source_port = 0;
        d->scope_id = 0;
        if (h->msg_namelen >= sizeof(struct sockaddr_in) && v4->sin_family == AF_INET) {
            d->family = AF_INET;
            d->source = v4->sin_addr.s_addr;
            d->source_port = v4->sin_port;
        } else if (h->msg_namelen >= sizeof(struct sockaddr_in6) && v6->sin6_family == AF_INET6) {
            d->family = AF_INET6;
            memcpy(d->source6, &v6->sin6_addr, 16);
            d->source_port = v6->sin6_port;
            d->scope_id = v6->sin6_scope_id;
        }
        d->interface_index = -1;
        d->destination = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo info;
                memcpy(&info, CMSG_DATA(c), sizeof info);
                d->interface_index = info.ipi_ifindex;
                d->destination = info.ipi_addr.s_addr;
            }
        }
    }
    return count;
}

/* sendmmsg(2) of `n` (at most 64) prepared messages. sendmmsg stops at the first failure and,
 * if something was sent before it, reports only the count. The next call starts at the failed
 * one, so it fails first and gives its errno; it is then skipped. Returns how many failed. */
static int send_prepared(int fd, struct mmsghdr *messages, int n, int flags, int *errors) {
    int failed = 0;
    int next = 0;
    for (int i = 0; i < n; i++) errors[i] = 0;
    while (next < n) {
        int sent = sendmmsg(fd, messages + next, (unsigned)(n - next), flags);
        if (sent > 0) {
            next += sent;
            continue;
        }
        errors[next] = sent < 0 ? errno : EIO;
        failed++;
        next++;
    }
    return failed;
}

/* Points a message at its one vector and its address. */
static void prepare_message(struct mmsghdr *message, struct iovec *vector, const void *bytes, int length,
                            void *name, socklen_t name_length) {
    memset(message, 0, sizeof *message);
    vector->iov_base = (void *)bytes;
    vector->iov_len = (size_t)length;
    message->msg_hdr.msg_name = name;
    message->msg_hdr.msg_namelen = name_length;
    message->msg_hdr.msg_iov = vector;
    message->msg_hdr.msg_iovlen = 1;
}

int clinux_send_datagrams(int fd, const clinux_outgoing *datagrams, int count, int *errors) {
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    struct sockaddr_in names[64];
    int failed = 0;
    /* Up to 64 per sendmmsg; a longer list goes in several. */
    for (int base = 0; base < count; base += 64) {
        int n = count - base < 64 ? count - base : 64;
        for (int i = 0; i < n; i++) {
            const clinux_outgoing *d = &datagrams[base + i];
            memset(&names[i], 0, sizeof names[i]);
            names[i].sin_family = AF_INET;
            names[i].sin_addr.s_addr = d->address;
            names[i].sin_port = d->port;
            prepare_message(&messages[i], &vectors[i], d->bytes, d->length, &names[i], sizeof names[i]);
        }
        failed += send_prepared(fd, messages, n, MSG_DONTWAIT, errors + base);
    }
    return failed;
}

int clinux_send_datagrams6(int fd, const clinux_outgoing6 *datagrams, int count, int flags, int *errors) {
    struct mmsghdr messages[64];
    struct iovec vectors[64];
    struct sockaddr_in6 names[64];
    int failed = 0;
    for (int base = 0; base < count; base += 64) {
        int n = count - base < 64 ? count - base : 64;
        for (int i = 0; i < n; i++) {
            const clinux_outgoing6 *d = &datagrams[base + i];
            memset(&names[i], 0, sizeof names[i]);
            names[i].sin6_family = AF_INET6;
            memcpy(&names[i].sin6_addr, d->address, 16);
            names[i].sin6_port = d->port;
            names[i].sin6_scope_id = d->scope_id;
            prepare_message(&messages[i], &vectors[i], d->bytes, d->length, &names[i], sizeof names[i]);
        }
        failed += send_prepared(fd, messages, n, flags, errors + base);
    }
    return failed;
}

uint64_t clinux_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clinux_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

int clinux_inotify_open(void) {
    return inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

int clinux_inotify_watch_dir(int fd, const char *dir) {
    return inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_MODIFY);
}

int clinux_inotify_wait(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0) return n < 0 && errno != EINTR ? -1 : 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
        any = 1;
    }
    return any;
}

int clinux_spawn_close_from(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

int clinux_open_beneath(int dirfd, const char *path, int flags) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// --- giving up root ------------------------------------------------------------------------
// The kernel's capability ABI (linux/capability.h), version 3: two 32-bit words per set.
#include <grp.h>
#include <sys/prctl.h>
#include <linux/capability.h>

int clinux_become_user(uint32_t uid, uint32_t gid, uint64_t keep, const char **step) {
    gid_t groups[1] = { gid };
    *step = "setgroups";
    if (setgroups(1, groups) != 0) return -1;
    *step = "setresgid";
    if (setresgid(gid, gid, gid) != 0) return -1;
    // While still root (CAP_SETPCAP): the bounding set shrinks to the kept capabilities, so
    // nothing this process or a child ever execs can regain another. Numbers past the kernel's
    // last capability answer EINVAL.
    for (int cap = 0; cap < 64; cap++) {
        if (keep & ((uint64_t)1 << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) { *step = "prctl(PR_CAPBSET_DROP)"; return -1; }
    }
    *step = "prctl(PR_SET_KEEPCAPS)";
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return -1;
    *step = "setresuid";
    if (setresuid(uid, uid, uid) != 0) return -1;
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int word = 0; word < 2; word++) {
        uint32_t bits = (uint32_t)(keep >> (32 * word));
        data[word].effective = bits;
        data[word].permitted = bits;
        data[word].inheritable = bits;
    }
    *step = "capset";
    if (syscall(SYS_capset, &header, data) != 0) return -1;
    for (int cap = 0; cap < 64; cap++) {
        if (!(keep & ((uint64_t)1 << cap))) continue;
        *step = "prctl(PR_CAP_AMBIENT_RAISE)";
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return -1;
    }
    *step = "prctl(PR_SET_KEEPCAPS, 0)";
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return -1;
    // No setuid or file-capability binary can raise privileges again (as systemd's
    // NoNewPrivileges=); it survives the execve too.
    *step = "prctl(PR_SET_NO_NEW_PRIVS)";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    *step = "";
    return 0;
}

uint64_t clinux_effective_capabilities(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return UINT64_MAX;
    return (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
}

// --- build stamp ---------------------------------------------------------------------------
// scripts/package.sh links in an object that defines this string (the commit); in any other
// build the weak reference stays unresolved and reads as NULL. A linked object rather than a
// -D flag: a define that changes with every commit would rebuild every C target.
extern const char bootpolicy_build_commit[] __attribute__((weak));

const char *clinux_build_commit(void) { return bootpolicy_build_commit ? bootpolicy_build_commit : ""; }

int clinux_neighbours6(unsigned char *out, int max) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return -errno;
    struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct {
        struct nlmsghdr h;
        struct ndmsg n;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
    req.h.nlmsg_type = RTM_GETNEIGH;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.n.ndm_family = AF_INET6;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    static __thread char buf[32768];
    int count = 0, done = 0, rounds = 0;
    while (!done && rounds++ < 4096) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0) break;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (h->nlmsg_type == NLMSG_ERROR) { done = 1; break; }
            if (h->nlmsg_type != RTM_NEWNEIGH) continue;
            struct ndmsg *nd = NLMSG_DATA(h);
            if (nd->ndm_family != AF_INET6 || (nd->ndm_state & (NUD_INCOMPLETE | NUD_FAILED))) continue;
            const unsigned char *dst = NULL, *ll = NULL;
            int attrlen = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(struct ndmsg));
            for (struct rtattr *a = (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(struct ndmsg)));
                 RTA_OK(a, attrlen); a = RTA_NEXT(a, attrlen)) {
                if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 16) dst = RTA_DATA(a);
                if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) ll = RTA_DATA(a);
            }
            if (dst && ll && count < max) {
                memcpy(out + count * 22, dst, 16);
                memcpy(out + count * 22 + 16, ll, 6);
                count++;
            }
        }
    }
    close(fd);
    return count;
}
