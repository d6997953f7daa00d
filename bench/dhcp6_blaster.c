/* A DHCPv6 Solicit load generator that costs little CPU, for the saturation part of
 * bench/dhcp6_bench.py: perfdhcp -6 spends about as much CPU per exchange as the servers, so
 * on two cores its ceiling (~30,000/s here) is the one both servers show. This multicasts the
 * netboot Solicit OVMF's PXEv6 sends (Client ID DUID-LL, IA_NA, elapsed time, ORO {59, 23},
 * option 61 arch 7, vendor class 343 "PXEClient:Arch:00007:UNDI:003000") from `clients`
 * MACs, in batches of one sendmmsg per millisecond, and counts the Advertises of this run with
 * a recvmmsg thread. No per-exchange timing: latency comes from perfdhcp.
 *
 *   dhcp6_blaster LOCAL_ADDR IFNAME RATE SECONDS [CLIENTS]
 *
 * Binds [LOCAL_ADDR]:546 (servers answer the Solicit's source, port 546) and sends to
 * [ff02::1:2%IFNAME]:547: run it inside the bench's client namespace only.
 * Prints one line: sent=N received=M seconds=S. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 1024
#define PACKET 160

static int fd;
static const uint32_t first_xid = 0x100000; /* 24-bit transaction ids from here */
static atomic_long received, total;
static atomic_int done;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint8_t *opt(uint8_t *o, uint16_t code, const void *data, uint16_t len) {
    *o++ = (uint8_t)(code >> 8); *o++ = (uint8_t)code;
    *o++ = (uint8_t)(len >> 8); *o++ = (uint8_t)len;
    memcpy(o, data, len);
    return o + len;
}

static size_t build(uint8_t *p, uint32_t xid, uint64_t mac) {
    uint8_t *o = p;
    *o++ = 1; /* SOLICIT */
    *o++ = (uint8_t)(xid >> 16); *o++ = (uint8_t)(xid >> 8); *o++ = (uint8_t)xid;
    uint8_t duid[10] = {0, 3, 0, 1}; /* DUID-LL, Ethernet */
    for (int i = 0; i < 6; i++) duid[4 + i] = (uint8_t)(mac >> (8 * (5 - i)));
    o = opt(o, 1, duid, sizeof duid);
    uint8_t iana[12] = {0, 0, 0, 1}; /* IAID 1, T1 = T2 = 0 */
    o = opt(o, 3, iana, sizeof iana);
    uint8_t elapsed[2] = {0, 0};
    o = opt(o, 8, elapsed, sizeof elapsed);
    uint8_t oro[4] = {0, 59, 0, 23};
    o = opt(o, 6, oro, sizeof oro);
    uint8_t arch[2] = {0, 7};
    o = opt(o, 61, arch, sizeof arch);
    static const char vc[] = "PXEClient:Arch:00007:UNDI:003000";
    uint8_t vendor[4 + 2 + sizeof vc - 1] = {0, 0, 1, 87, 0, sizeof vc - 1};
    memcpy(vendor + 6, vc, sizeof vc - 1);
    o = opt(o, 16, vendor, sizeof vendor);
    return (size_t)(o - p);
}

static void *receiver(void *arg) {
    (void)arg;
    static uint8_t bufs[64][1500];
    struct mmsghdr msgs[64];
    struct iovec iov[64];
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < 64; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, 64, 0, NULL);
        if (n < 0) {
            if (atomic_load(&done)) break;
            continue;
        }
        for (int i = 0; i < n; i++) {
            uint8_t *b = bufs[i];
            if (msgs[i].msg_len >= 4 && b[0] == 2) { /* ADVERTISE */
                uint32_t x = ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
                if (x >= first_xid && x < first_xid + (uint32_t)atomic_load(&total)) atomic_fetch_add(&received, 1);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s LOCAL_ADDR IFNAME RATE SECONDS [CLIENTS]\n", argv[0]);
        return 2;
    }
    struct in6_addr local, group;
    if (inet_pton(AF_INET6, argv[1], &local) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    inet_pton(AF_INET6, "ff02::1:2", &group);
    unsigned ifindex = if_nametoindex(argv[2]);
    if (!ifindex) { perror("if_nametoindex"); return 2; }
    long rate = atol(argv[3]);
    double seconds = atof(argv[4]);
    long clients = argc > 5 ? atol(argv[5]) : 100000;
    if (rate <= 0 || rate > 1000 * BATCH_MAX || seconds <= 0 || seconds > 60 || clients <= 0
        || rate * seconds >= (double)(0xffffff - first_xid)) {
        fprintf(stderr, "rate 1..%d, seconds 0..60, rate x seconds < %u, clients > 0\n", 1000 * BATCH_MAX, 0xffffff - first_xid);
        return 2;
    }
    fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1, big = 8 << 20, hops = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex);
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
    struct timeval tv = {0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in6 me = {.sin6_family = AF_INET6, .sin6_port = htons(546), .sin6_addr = local};
    if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) { perror("bind"); return 1; }

    pthread_t rx;
    pthread_create(&rx, NULL, receiver, NULL);

    static uint8_t packets[BATCH_MAX][PACKET];
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(547), .sin6_addr = group,
                              .sin6_scope_id = ifindex};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    long sent = 0;
    atomic_store(&total, (long)(rate * seconds));
    double start = now();
    while (sent < atomic_load(&total)) {
        long due = (long)((now() - start) * rate) + 1;
        if (due > atomic_load(&total)) due = atomic_load(&total);
        int n = (int)(due - sent);
        if (n > BATCH_MAX) n = BATCH_MAX;
        for (int i = 0; i < n; i++) {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            uint64_t mac = 0x020000000000ull | (uint64_t)(seed % (uint64_t)clients);
            iov[i].iov_base = packets[i];
            iov[i].iov_len = build(packets[i], first_xid + (uint32_t)(sent + i), mac);
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_name = &to;
            msgs[i].msg_hdr.msg_namelen = sizeof to;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        if (n > 0) {
            int k = sendmmsg(fd, msgs, (unsigned)n, 0);
            if (k > 0) sent += k;
            else if (k < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) { perror("sendmmsg"); break; }
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    double elapsed = now() - start;
    usleep(300000); /* the last answers */
    atomic_store(&done, 1);
    pthread_join(rx, NULL);
    printf("sent=%ld received=%ld seconds=%.3f\n", sent, atomic_load(&received), elapsed);
    return 0;
}
