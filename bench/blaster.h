/* What the bench's IPv4 load generators (dhcp_blaster.c, dora_blaster.c) share: sending a
 * prepared batch with sendmmsg, and the millisecond pacing of their send loops. */
#ifndef BP_BLASTER_H
#define BP_BLASTER_H
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Points each of the `n` messages at its iov (filled by the caller) and at `to`. */
static inline void blaster_address(struct mmsghdr *msgs, struct iovec *iov, int n, struct sockaddr_in *to) {
    for (int i = 0; i < n; i++) {
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_name = to;
        msgs[i].msg_hdr.msg_namelen = sizeof *to;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
}

/* sendmmsg of the `n` messages, in as many calls as the kernel wants; how many it took. A full
 * queue drops the rest of the batch (the caller decides whether those count as sent). */
static inline int blaster_send(int fd, struct mmsghdr *msgs, int n) {
    int off = 0;
    while (off < n) {
        int m = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
        if (m <= 0) break;
        off += m;
    }
    return off;
}

/* Sleeps until `tick` + 1 ms (CLOCK_MONOTONIC, absolute), which becomes the new `tick`. */
static inline void blaster_next_millisecond(struct timespec *tick) {
    tick->tv_nsec += 1000000;
    if (tick->tv_nsec >= 1000000000) { tick->tv_sec++; tick->tv_nsec -= 1000000000; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, tick, NULL);
}
#endif
