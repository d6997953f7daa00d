/* A full-DHCP (DISCOVER, OFFER, REQUEST, ACK) load generator that costs little CPU, for measuring
 * saturation on two cores (bench/dora_bench.py --client blaster). perfdhcp spends about as much
 * CPU per exchange as the server does, so at saturation the server gets what perfdhcp leaves it
 * and the ratio between servers is a floor. This sends the DISCOVER perfdhcp's DORA sends
 * (relayed: hops 1, giaddr = our address, options 53, 55, 61) from `clients` MACs taken in turn,
 * each with a fresh xid, in batches of one sendmmsg per millisecond. A recvmmsg thread takes the
 * OFFERs (matched by xid: op 2, option 53 = 2) and answers each receive batch with one sendmmsg
 * of REQUESTs (same xid and chaddr, option 50 = yiaddr, 54 = the OFFER's 54), then counts ACKs
 * and NAKs and times REQUEST -> ACK: the send time is kept per xid in a table indexed by xid
 * modulo a power of two, the ACK's is the kernel's receive stamp (SO_TIMESTAMPNS: this thread's
 * own wake-up on a busy machine is not the server's latency; perfdhcp polls and never waits for
 * one), and the latencies go to a bounded reservoir sample for p50/p99.
 *
 *   dora_blaster LOCAL_ADDR SERVER_ADDR RATE SECONDS [CLIENTS]
 *
 * Binds LOCAL_ADDR:67 (replies to a relay go to its port 67): run it inside the bench's client
 * namespace only. Prints one line:
 * discovers=N offers=N requests=N acks=N naks=N seconds=S p50_ack_us=X p99_ack_us=Y
 * (-1 for the latencies when no ACK was timed). Exits after SECONDS + 2 s whatever happens. */
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
#define RX_BATCH 64
#define PACKET 400 /* room; a DISCOVER here is 300 bytes (padded, as perfdhcp's), a REQUEST too */
#define SLOTS (1u << 20) /* REQUEST send times by xid: more than one run's REQUESTs at 60,000/s */
#define SAMPLE (1u << 18) /* REQUEST -> ACK latencies kept (reservoir) */

static int fd;
static uint32_t first_xid = 0x10000000, giaddr;
static long clients;
static atomic_long discovers, offers, requests, acks, naks, total;
static atomic_int done;

/* Touched by the receive thread only: it sends the REQUESTs and takes the ACKs. ns: CLOCK_REALTIME. */
static struct { uint32_t xid; uint64_t ns; } slot[SLOTS];
static uint32_t sample[SAMPLE]; /* ns */
static uint64_t timed;

static uint64_t ns_of(struct timespec t) { return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec; }

static uint64_t clock_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return ns_of(t);
}

static double now(void) { return clock_ns(CLOCK_MONOTONIC) / 1e9; }

/* The kernel's receive time of a message (CLOCK_REALTIME, as SO_TIMESTAMPNS stamps), else `dflt`. */
static uint64_t stamp(struct msghdr *h, uint64_t dflt) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(c), sizeof t);
            return ns_of(t);
        }
    return dflt;
}

static uint64_t mac_of(uint32_t xid) { return 0x020000000000ull | (uint64_t)((xid - first_xid) % (uint64_t)clients); }

/* The fixed header and the options both messages share; `o` past option 53. */
static uint8_t *header(uint8_t *p, uint32_t xid, uint64_t mac, uint8_t type) {
    return blaster_request(p, PACKET, xid, mac, giaddr, type);
}

static size_t finish(uint8_t *p, uint8_t *o, uint64_t mac) {
    static const uint8_t prl[] = {55, 7, 1, 28, 2, 3, 15, 6, 12};
    memcpy(o, prl, sizeof prl); o += sizeof prl;
    *o++ = 61; *o++ = 7; *o++ = 1;
    for (int i = 0; i < 6; i++) *o++ = (uint8_t)(mac >> (8 * (5 - i)));
    *o++ = 255;
    size_t len = (size_t)(o - p);
    return len < 300 ? 300 : len;
}

static size_t build_discover(uint8_t *p, uint32_t xid) {
    uint64_t mac = mac_of(xid);
    return finish(p, header(p, xid, mac, 1), mac);
}

static size_t build_request(uint8_t *p, uint32_t xid, const uint8_t yiaddr[4], const uint8_t sid[4]) {
    uint64_t mac = mac_of(xid);
    uint8_t *o = header(p, xid, mac, 3);
    *o++ = 50; *o++ = 4; memcpy(o, yiaddr, 4); o += 4;
    *o++ = 54; *o++ = 4; memcpy(o, sid, 4); o += 4;
    return finish(p, o, mac);
}

/* Option 53 (the message type) and option 54 (server id, into sid; *has_sid) of a reply. */
static int message_type(const uint8_t *b, size_t len, uint8_t sid[4], int *has_sid) {
    int type = 0;
    *has_sid = 0;
    size_t i = 240;
    while (i < len) {
        uint8_t code = b[i];
        if (code == 255) break;
        if (code == 0) { i++; continue; }
        if (i + 1 >= len || i + 2 + b[i + 1] > len) break;
        uint8_t n = b[i + 1];
        if (code == 53 && n == 1) type = b[i + 2];
        if (code == 54 && n == 4) { memcpy(sid, b + i + 2, 4); *has_sid = 1; }
        i += 2 + n;
    }
    return type;
}

static void keep(uint64_t ns, uint64_t *seed) {
    uint32_t v = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
    if (timed < SAMPLE) {
        sample[timed] = v;
    } else {
        *seed ^= *seed << 13; *seed ^= *seed >> 7; *seed ^= *seed << 17;
        uint64_t j = *seed % (timed + 1);
        if (j < SAMPLE) sample[j] = v;
    }
    timed++;
}

static void *receiver(void *arg) {
    static uint8_t bufs[RX_BATCH][1500];
    static uint8_t reqs[RX_BATCH][PACKET];
    static uint8_t ctrl[RX_BATCH][CMSG_SPACE(sizeof(struct timespec))];
    struct mmsghdr msgs[RX_BATCH], out[RX_BATCH];
    struct iovec iov[RX_BATCH], oiov[RX_BATCH];
    uint32_t oxid[RX_BATCH];
    struct sockaddr_in to = *(struct sockaddr_in *)arg;
    uint64_t seed = 0xD1B54A32D192ED03ull;
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
        }
        /* MSG_WAITFORONE: what is queued, at once; waits (SO_RCVTIMEO, 100 ms) only for the first. */
        int n = recvmmsg(fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (atomic_load(&done)) break;
            continue;
        }
        uint64_t t = clock_ns(CLOCK_REALTIME);
        long total_now = atomic_load(&total);
        int nreq = 0;
        for (int i = 0; i < n; i++) {
            uint8_t *b = bufs[i];
            size_t len = msgs[i].msg_len;
            if (len < 240 || b[0] != 2) continue;
            uint32_t x;
            memcpy(&x, b + 4, 4);
            x = ntohl(x);
            /* Any xid of this run: `discovers` is stored only after a whole sendmmsg, and a fast
             * server answers the batch's first DISCOVERs before that. */
            if (x < first_xid || x >= first_xid + (uint32_t)total_now) continue;
            uint8_t sid[4];
            int has_sid;
            int type = message_type(b, len, sid, &has_sid);
            uint32_t k = x & (SLOTS - 1);
            if (type == 2) {
                atomic_fetch_add(&offers, 1);
                if (!has_sid || slot[k].xid == x) continue; /* no server id, or REQUEST already sent */
                slot[k].xid = x;
                slot[k].ns = 0; /* set when sent, below */
                oiov[nreq].iov_base = reqs[nreq];
                oiov[nreq].iov_len = build_request(reqs[nreq], x, b + 16, sid);
                oxid[nreq++] = x;
            } else if (type == 5 || type == 6) {
                atomic_fetch_add(type == 5 ? &acks : &naks, 1);
                uint64_t at = type == 5 ? stamp(&msgs[i].msg_hdr, t) : 0;
                if (type == 5 && slot[k].xid == x && slot[k].ns && at >= slot[k].ns) {
                    keep(at - slot[k].ns, &seed);
                    slot[k].ns = 0; /* once per xid */
                }
            }
        }
        if (nreq == 0) continue;
        blaster_address(out, oiov, nreq, &to);
        uint64_t ts = clock_ns(CLOCK_REALTIME);
        int off = blaster_send(fd, out, nreq); /* a full queue drops the rest: not counted */
        for (int i = 0; i < off; i++) slot[oxid[i] & (SLOTS - 1)].ns = ts;
        atomic_fetch_add(&requests, off);
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    struct in_addr local, server;
    long rate;
    double seconds;
    clients = 10000;
    int bad = blaster_arguments(argc, argv, BATCH_MAX, &local, &server, &rate, &seconds, &clients);
    if (bad) return bad;
    alarm((unsigned)seconds + 2); /* the hard stop: SIGALRM ends the process, no result line */
    giaddr = local.s_addr;
    if ((fd = blaster_socket(local)) < 0) return 1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);

    static struct sockaddr_in to;
    to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(67), .sin_addr = server};
    atomic_store(&total, (long)(rate * seconds));
    pthread_t rx;
    pthread_create(&rx, NULL, receiver, &to);

    static uint8_t packets[BATCH_MAX][PACKET];
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    double start = now();
    long next = 0;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    /* Bounded by time too: a starved sender stops half a second late, having sent fewer. */
    while (next < atomic_load(&total) && now() - start < seconds + 0.5) {
        /* Due by now: rate x elapsed, sent in one sendmmsg (at most BATCH_MAX). */
        long due = (long)((now() - start) * rate) + 1;
        if (due > atomic_load(&total)) due = atomic_load(&total);
        int n = (int)(due - next);
        if (n > BATCH_MAX) n = BATCH_MAX;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = packets[i];
            iov[i].iov_len = build_discover(packets[i], first_xid + (uint32_t)(next + i));
        }
        blaster_address(msgs, iov, n, &to);
        blaster_send(fd, msgs, n); /* what a full queue drops counts as sent, unanswered */
        next += n;
        atomic_store(&discovers, next);
        blaster_next_millisecond(&tick);
    }
    double elapsed = now() - start;
    usleep(500000); /* late answers, and the REQUESTs' ACKs */
    atomic_store(&done, 1);
    pthread_join(rx, NULL);
    size_t kept = timed < SAMPLE ? (size_t)timed : SAMPLE;
    double p50 = -1, p99 = -1;
    if (kept) {
        qsort(sample, kept, sizeof sample[0], by_value);
        p50 = sample[kept / 2] / 1e3;
        p99 = sample[(size_t)(0.99 * kept) < kept ? (size_t)(0.99 * kept) : kept - 1] / 1e3;
    }
    printf("discovers=%ld offers=%ld requests=%ld acks=%ld naks=%ld seconds=%.3f p50_ack_us=%.0f p99_ack_us=%.0f\n",
           atomic_load(&discovers), atomic_load(&offers), atomic_load(&requests), atomic_load(&acks),
           atomic_load(&naks), elapsed, p50, p99);
    return 0;
}
