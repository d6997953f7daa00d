/* A ProxyDHCP load generator that costs little CPU, for measuring saturation on two cores
 * (bench/saturation.py). perfdhcp spends about as much CPU per exchange as the server does,
 * so at its ceiling (~40,000/s here) the two share the machine and neither server can show
 * how far it would go. This sends the DISCOVER perfdhcp sends (relayed: hops 1, giaddr = our
 * address, options 53, 55, 60 PXEClient, 61, 93, 94) from `clients` MACs, in batches of one
 * sendmmsg per millisecond, and counts OFFERs with a recvmmsg thread. No per-exchange timing:
 * latency comes from perfdhcp at lower rates.
 *
 *   dhcp_blaster LOCAL_ADDR SERVER_ADDR RATE SECONDS [CLIENTS]
 *
 * Binds LOCAL_ADDR:67 (replies to a relay go to its port 67): run it inside the bench's client
 * namespace only. Prints one line: sent=N received=M seconds=S. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

#include "blaster.h"

#define BATCH_MAX 1024
#define PACKET 400 /* room; a DISCOVER here is 305 bytes, as perfdhcp's */

static int fd;
static uint32_t first_xid = 0x10000000;
static atomic_long sent, received, total;
static atomic_int done;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static size_t build(uint8_t *p, uint32_t xid, uint64_t mac, uint32_t giaddr) {
    uint8_t *o = blaster_request(p, PACKET, xid, mac, giaddr, 1);
    static const uint8_t prl[] = {55, 7, 1, 28, 2, 3, 15, 6, 12};
    memcpy(o, prl, sizeof prl); o += sizeof prl;
    static const char vc[] = "PXEClient:Arch:00000:UNDI:002001";
    *o++ = 60; *o++ = (uint8_t)(sizeof vc - 1);
    memcpy(o, vc, sizeof vc - 1); o += sizeof vc - 1;
    *o++ = 61; *o++ = 7; *o++ = 1;
    for (int i = 0; i < 6; i++) *o++ = (uint8_t)(mac >> (8 * (5 - i)));
    *o++ = 93; *o++ = 2; *o++ = 0; *o++ = 0;
    *o++ = 94; *o++ = 3; *o++ = 1; *o++ = 2; *o++ = 1;
    *o++ = 255;
    size_t len = (size_t)(o - p);
    return len < 300 ? 300 : len;
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
            if ((errno == EAGAIN || errno == EINTR) && !atomic_load(&done)) continue;
            if (atomic_load(&done)) break;
            continue;
        }
        for (int i = 0; i < n; i++) {
            uint8_t *b = bufs[i];
            if (msgs[i].msg_len >= 240 && b[0] == 2) {
                uint32_t x;
                memcpy(&x, b + 4, 4);
                x = ntohl(x);
                /* Any xid of this run: `sent` is stored only after a whole sendmmsg, and a fast
                 * server answers the batch's first DISCOVERs before that. */
                if (x >= first_xid && x < first_xid + (uint32_t)atomic_load(&total)) atomic_fetch_add(&received, 1);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    struct in_addr local, server;
    long rate, clients = 100000;
    double seconds;
    int bad = blaster_arguments(argc, argv, BATCH_MAX, &local, &server, &rate, &seconds, &clients);
    if (bad) return bad;
    if ((fd = blaster_socket(local)) < 0) return 1;

    pthread_t rx;
    pthread_create(&rx, NULL, receiver, NULL);

    static uint8_t packets[BATCH_MAX][PACKET];
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(67), .sin_addr = server};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    double start = now();
    atomic_store(&total, (long)(rate * seconds));
    long next = 0;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    while (next < atomic_load(&total)) {
        /* Due by now: rate x elapsed, sent in one sendmmsg (at most BATCH_MAX). */
        long due = (long)((now() - start) * rate) + 1;
        if (due > atomic_load(&total)) due = atomic_load(&total);
        int n = (int)(due - next);
        if (n > BATCH_MAX) n = BATCH_MAX;
        for (int i = 0; i < n; i++) {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            uint64_t mac = 0x020000000000ull | (uint64_t)(seed % (uint64_t)clients);
            iov[i].iov_base = packets[i];
            iov[i].iov_len = build(packets[i], first_xid + (uint32_t)(next + i), mac, local.s_addr);
        }
        blaster_address(msgs, iov, n, &to);
        blaster_send(fd, msgs, n); /* what a full queue drops counts as sent, unanswered */
        next += n;
        atomic_store(&sent, next);
        blaster_next_millisecond(&tick);
    }
    double elapsed = now() - start;
    usleep(500000); /* late answers */
    atomic_store(&done, 1);
    pthread_join(rx, NULL);
    printf("sent=%ld received=%ld seconds=%.3f\n", atomic_load(&sent), atomic_load(&received), elapsed);
    return 0;
}
