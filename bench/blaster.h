/* What the bench's IPv4 load generators (dhcp_blaster.c, dora_blaster.c) share: their
 * arguments, the relay socket, the BOOTREQUEST header, sending a prepared batch with sendmmsg,
 * and the millisecond pacing of their send loops. */
#ifndef BP_BLASTER_H
#define BP_BLASTER_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* LOCAL_ADDR SERVER_ADDR RATE SECONDS [CLIENTS]; 0, or 2 (the exit status) after saying why. */
static inline int blaster_arguments(int argc, char **argv, int batch_max, struct in_addr *local, struct in_addr *server,
                                    long *rate, double *seconds, long *clients) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s LOCAL_ADDR SERVER_ADDR RATE SECONDS [CLIENTS]\n", argv[0]);
        return 2;
    }
    if (!inet_aton(argv[1], local) || !inet_aton(argv[2], server)) { fprintf(stderr, "bad address\n"); return 2; }
    *rate = atol(argv[3]);
    *seconds = atof(argv[4]);
    if (argc > 5) *clients = atol(argv[5]);
    if (*rate <= 0 || *rate > 1000L * batch_max || *seconds <= 0 || *seconds > 60 || *clients <= 0) {
        fprintf(stderr, "rate 1..%d, seconds 0..60, clients > 0\n", 1000 * batch_max);
        return 2;
    }
    return 0;
}

/* A UDP socket bound to LOCAL:67 (a relay's port: the servers answer it there) with large
 * buffers and a 100 ms receive timeout, so a receive thread sees the stop flag; -1 on failure. */
static inline int blaster_socket(struct in_addr local) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1, big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(67), .sin_addr = local};
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) { perror("bind"); return -1; }
    return fd;
}

/* A relayed BOOTREQUEST (hops 1, giaddr, chaddr `mac`) of `size` bytes, zeroed, up to the magic
 * cookie and option 53 = `type`; where the next option goes. giaddr in network byte order. */
static inline uint8_t *blaster_request(uint8_t *p, size_t size, uint32_t xid, uint64_t mac, uint32_t giaddr, uint8_t type) {
    memset(p, 0, size);
    p[0] = 1; p[1] = 1; p[2] = 6; p[3] = 1;
    uint32_t x = htonl(xid);
    memcpy(p + 4, &x, 4);
    memcpy(p + 24, &giaddr, 4);
    for (int i = 0; i < 6; i++) p[28 + i] = (uint8_t)(mac >> (8 * (5 - i)));
    uint8_t *o = p + 236;
    *o++ = 99; *o++ = 130; *o++ = 83; *o++ = 99;
    *o++ = 53; *o++ = 1; *o++ = type;
    return o;
}

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
