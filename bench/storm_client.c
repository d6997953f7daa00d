/* The boot storm's load generator in C (bench/storm.py --client c). The Python asyncio client
 * shares the two cores with the server and was itself the bottleneck of the storm; this one
 * runs the same per-client sequence for N clients at once in one epoll loop and costs little
 * per datagram and per byte:
 *
 *   1. ProxyDHCP DISCOVER (PXE BIOS options, from the client's own MAC) broadcast from port 68
 *      on one shared socket bound to the client interface; the OFFER is matched by xid and must
 *      name the boot file and the server as next-server. 4 tries, waiting 1, 2, 3, 4 s.
 *   2. TFTP RRQ for the boot file (blksize, tsize), lock-step ACKs; the last packet is resent
 *      after 1 s of silence, at most 5 times in a row. Checked: tsize, total length and a
 *      64-bit word hash of the payload against the file's, computed once at start.
 *   3. HTTP GET of the machine's iPXE script (one connection, Connection: close): status 200,
 *      body starts with #!ipxe and, with --check-mac, names the MAC.
 *   4. With --big-size, HTTP GET of the large file on a new connection: status 200,
 *      Content-Length and bytes received both equal --big-size. The body is counted, not kept.
 *
 * The whole run ends at --deadline seconds; a client still running then is a failure of the
 * stage it was in. Prints one line of key=value (see the end of main). Only for the bench's
 * client namespace: it binds UDP port 68 on --iface and broadcasts there.
 *
 *   storm_client --server 192.168.78.1 --iface bpb-c --clients 1000 --deadline 240 \
 *       --boot-file undionly.kpxe --boot-path ROOT/undionly.kpxe --tokens FILE \
 *       [--script '/boot.ipxe?mac=%m&arch=bios&token=%t'] [--check-mac] \
 *       [--big-url /vmlinuz --big-size BYTES] [--http-port 8080] [--blksize 1432] [--rcvbuf BYTES]
 *
 * --tokens: one script token per line, line i for client i (MAC 52:54:01:ii:ii:ii); %m in
 * --script is the MAC with dashes, %t the token. --rcvbuf fixes each HTTP connection's
 * SO_RCVBUF (default: the kernel's autotuning, up to tcp_rmem's maximum). One kernel holds
 * all N clients' receive queues here, where a real storm has N kernels: with autotuning,
 * 1,000 concurrent 30 MB downloads can reach tcp_mem's pressure threshold and the client
 * side then drops segments (TcpExt PruneCalled, TCPRcvQDrop), which the server sees as
 * retransmission timeouts. --start tftp|http (a diagnostic) begins every client at that
 * stage at once, the stages before it counted as taking no time: the servers compared on
 * one protocol with the same arrival for both. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { S_DHCP, S_TFTP, S_SCRIPT, S_FILE, S_DONE, S_FAILED, NSTAGES = 4 };
static const char *stage_name[] = {"dhcp", "tftp", "http", "file"};

/* ------------------------------------------------------------------ payload hash */
/* Word-wise: each step h -> g(h ^ w) with g a bijection, so streams differing in one word
 * always end different; several differences collide with probability ~2^-64. */
typedef struct {
    uint64_t h, len;
    uint8_t tail[8];
    int nt;
} hash_t;

static inline uint64_t mixw(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 31);
}

static void hash_init(hash_t *s) { memset(s, 0, sizeof *s); s->h = 0xcbf29ce484222325ull; }

static void hash_update(hash_t *s, const uint8_t *p, size_t n) {
    s->len += n;
    if (s->nt) {
        while (n && s->nt < 8) { s->tail[s->nt++] = *p++; n--; }
        if (s->nt < 8) return;
        uint64_t w; memcpy(&w, s->tail, 8);
        s->h = mixw(s->h, w);
        s->nt = 0;
    }
    uint64_t h = s->h;
    for (; n >= 8; p += 8, n -= 8) { uint64_t w; memcpy(&w, p, 8); h = mixw(h, w); }
    s->h = h;
    memcpy(s->tail, p, n);
    s->nt = (int)n;
}

static uint64_t hash_final(const hash_t *s) {
    uint64_t w = 0;
    memcpy(&w, s->tail, (size_t)s->nt);
    return mixw(mixw(s->h, w), s->len);
}

/* ------------------------------------------------------------------ parameters and state */
static struct in_addr server;
static const char *iface = "bpb-c", *boot_file = "undionly.kpxe", *boot_path, *tokens_path;
static const char *script_tmpl = "/boot.ipxe?mac=%m&arch=bios&token=%t", *big_url = "/vmlinuz";
static int nclients = 1000, check_mac, http_port = 8080, blksize_req = 1432, rcvbuf, start_stage = S_DHCP;
static double deadline_s = 90;
static long long big_size;
static uint64_t boot_size, boot_hash;
static char **tokens;

typedef struct {
    int stage, fd, tries;
    uint32_t xid;
    double t[5];   /* start, offer, tftp done, script done, file done */
    double timer;  /* when to retransmit (0: none) */
    /* TFTP */
    uint16_t want;
    int blksize, have_peer;
    struct sockaddr_in peer;
    uint8_t last[96];
    int last_len;
    struct sockaddr_in last_to;
    hash_t hs;
    /* HTTP */
    char *hbuf;
    size_t hlen, hcap;
    int have_head;
    long long clen, body;
    const char *why;
} client_t;

static client_t *cl;
static int epfd, dfd;
static uint8_t *rbuf;
#define RBUF (1 << 20)
static long dhcp_retries, tftp_retransmits, tftp_dups, offers_unmatched;
static long failed[NSTAGES], deadline_failed[NSTAGES];
static int active;
#define MAXREASONS 16
static struct { const char *why; int stage; long n; } reasons[MAXREASONS];
static int nreasons;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void mac_of(int i, uint8_t mac[6]) {
    mac[0] = 0x52; mac[1] = 0x54; mac[2] = 0x01;
    mac[3] = (uint8_t)(i >> 16); mac[4] = (uint8_t)(i >> 8); mac[5] = (uint8_t)i;
}

static void close_fd(client_t *c) {
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }  /* close removes it from the epoll set */
}

static void fail(client_t *c, const char *why) {
    if (c->stage >= S_DONE) return;
    failed[c->stage]++;
    int k;
    for (k = 0; k < nreasons; k++)
        if (reasons[k].stage == c->stage && strcmp(reasons[k].why, why) == 0) break;
    if (k == nreasons && nreasons < MAXREASONS) { reasons[k].why = why; reasons[k].stage = c->stage; nreasons++; }
    if (k < nreasons) reasons[k].n++;
    close_fd(c);
    free(c->hbuf); c->hbuf = NULL;
    c->why = why;
    c->stage = S_FAILED;
    c->timer = 0;
    active--;
}

/* ------------------------------------------------------------------ DHCP */
static size_t discover(uint8_t *p, uint32_t xid, const uint8_t mac[6]) {
    memset(p, 0, 236);
    p[0] = 1; p[1] = 1; p[2] = 6;
    uint32_t x = htonl(xid);
    memcpy(p + 4, &x, 4);
    p[10] = 0x80; /* broadcast flag: the client has no address yet */
    memcpy(p + 28, mac, 6);
    uint8_t *o = p + 236;
    *o++ = 99; *o++ = 130; *o++ = 83; *o++ = 99;
    *o++ = 53; *o++ = 1; *o++ = 1;
    *o++ = 57; *o++ = 2; *o++ = 1260 >> 8; *o++ = 1260 & 0xff;
    static const uint8_t prl[] = {55, 9, 1, 3, 43, 60, 66, 67, 97, 128, 129};
    memcpy(o, prl, sizeof prl); o += sizeof prl;
    *o++ = 93; *o++ = 2; *o++ = 0; *o++ = 0;
    *o++ = 94; *o++ = 3; *o++ = 1; *o++ = 2; *o++ = 1;
    *o++ = 97; *o++ = 17; *o++ = 0; memcpy(o, mac, 6); o += 6; memset(o, 0, 10); o += 10;
    static const char vc[] = "PXEClient:Arch:00000:UNDI:002001";
    *o++ = 60; *o++ = (uint8_t)(sizeof vc - 1);
    memcpy(o, vc, sizeof vc - 1); o += sizeof vc - 1;
    *o++ = 255;
    return (size_t)(o - p);
}

static void send_discover(client_t *c, int i) {
    uint8_t p[400], mac[6];
    mac_of(i, mac);
    size_t n = discover(p, c->xid, mac);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(67), .sin_addr.s_addr = INADDR_BROADCAST};
    (void)sendto(dfd, p, n, 0, (struct sockaddr *)&to, sizeof to); /* a full buffer loses it, as a wire would */
    c->timer = now() + 1.0 * (c->tries + 1);
}

static uint32_t xid_base;
static void start_tftp(client_t *c);

static void dhcp_readable(void) {
    for (;;) {
        ssize_t n = recv(dfd, rbuf, 2048, 0);
        if (n < 0) return;
        if (n < 240 || rbuf[0] != 2) continue;
        uint32_t x; memcpy(&x, rbuf + 4, 4); x = ntohl(x);
        uint32_t i = x - xid_base;
        if (i >= (uint32_t)nclients || cl[i].xid != x || cl[i].stage != S_DHCP) { offers_unmatched++; continue; }
        client_t *c = &cl[i];
        struct in_addr si; memcpy(&si, rbuf + 20, 4);
        char file[129]; memcpy(file, rbuf + 108, 128); file[128] = 0;
        c->t[1] = now();
        if (si.s_addr != server.s_addr || strcmp(file, boot_file) != 0) { fail(c, "unexpected OFFER"); continue; }
        c->stage = S_TFTP;
        c->tries = 0;
        start_tftp(c);
    }
}

/* ------------------------------------------------------------------ TFTP */
static void tftp_send_last(client_t *c) {
    (void)sendto(c->fd, c->last, (size_t)c->last_len, 0, (struct sockaddr *)&c->last_to, sizeof c->last_to);
    c->timer = now() + 1.0;
}

static void start_tftp(client_t *c) {
    c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { fail(c, "tftp socket"); return; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(c - cl)};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    int n = snprintf((char *)c->last, sizeof c->last, "xx%s%coctet%cblksize%c%d%ctsize%c0%c", boot_file, 0, 0, 0,
                     blksize_req, 0, 0, 0);
    c->last[0] = 0; c->last[1] = 1;
    c->last_len = n;
    c->last_to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(69), .sin_addr = server};
    c->want = 1;
    c->blksize = 512;
    c->have_peer = 0;
    hash_init(&c->hs);
    tftp_send_last(c);
}

static void set_ack(client_t *c, uint16_t block) {
    c->last[0] = 0; c->last[1] = 4; c->last[2] = (uint8_t)(block >> 8); c->last[3] = (uint8_t)block;
    c->last_len = 4;
    c->last_to = c->peer;
}

static void start_http(client_t *c);

static void tftp_readable(client_t *c) {
    for (int k = 0; k < 8 && c->stage == S_TFTP; k++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(c->fd, rbuf, 65536, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) return;
        if (n < 4) continue;
        if (!c->have_peer) {
            if (from.sin_addr.s_addr != server.s_addr) continue;
            c->peer = from; c->have_peer = 1;
        } else if (from.sin_addr.s_addr != c->peer.sin_addr.s_addr || from.sin_port != c->peer.sin_port) continue;
        int op = rbuf[0] << 8 | rbuf[1];
        if (op == 6 && c->want == 1) { /* OACK */
            const char *p = (const char *)rbuf + 2, *end = (const char *)rbuf + n;
            while (p < end) {
                const char *name = p; p += strnlen(p, (size_t)(end - p)) + 1;
                if (p >= end) break;
                const char *val = p; p += strnlen(p, (size_t)(end - p)) + 1;
                if (strcasecmp(name, "blksize") == 0) c->blksize = atoi(val);
                else if (strcasecmp(name, "tsize") == 0 && strtoull(val, NULL, 10) != boot_size) { fail(c, "tftp tsize"); return; }
            }
            if (c->blksize < 8 || c->blksize > 65464) { fail(c, "tftp blksize"); return; }
            set_ack(c, 0);
            c->tries = 0;
            tftp_send_last(c);
        } else if (op == 3) {
            uint16_t block = (uint16_t)(rbuf[2] << 8 | rbuf[3]);
            size_t len = (size_t)n - 4;
            if (block == c->want) {
                if (len > (size_t)c->blksize) { fail(c, "tftp oversized block"); return; }
                hash_update(&c->hs, rbuf + 4, len);
                c->want++;
                c->tries = 0;
                set_ack(c, block);
                tftp_send_last(c);
                if (len < (size_t)c->blksize) {
                    close_fd(c);
                    c->t[2] = now();
                    if (c->hs.len != boot_size) { fail(c, "tftp length mismatch"); return; }
                    if (hash_final(&c->hs) != boot_hash) { fail(c, "tftp content mismatch"); return; }
                    c->stage = S_SCRIPT;
                    start_http(c);
                    return;
                }
            } else {
                tftp_dups++; /* an earlier block again: acknowledged again, as the Python client does */
                uint8_t ack[4] = {0, 4, (uint8_t)(block >> 8), (uint8_t)block};
                (void)sendto(c->fd, ack, 4, 0, (struct sockaddr *)&c->peer, sizeof c->peer);
            }
        } else if (op == 5) {
            fail(c, "tftp error packet");
            return;
        }
    }
}

/* ------------------------------------------------------------------ HTTP */
static void start_http(client_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { fail(c, "http socket"); return; }
    if (rcvbuf > 0) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf); /* before connect: sets the window scale */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port), .sin_addr = server};
    if (connect(c->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) { fail(c, "http connect"); return; }
    c->hcap = c->stage == S_SCRIPT ? 65536 : 8192;
    c->hbuf = malloc(c->hcap);
    c->hlen = 0; c->have_head = 0; c->clen = -1; c->body = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(c - cl)};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void http_request(client_t *c) {
    int err = 0; socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) { fail(c, "http connect"); return; }
    char path[512], req[768];
    if (c->stage == S_SCRIPT) {
        int i = (int)(c - cl);
        uint8_t mac[6]; mac_of(i, mac);
        char m[18];
        snprintf(m, sizeof m, "%02x-%02x-%02x-%02x-%02x-%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        size_t o = 0;
        for (const char *p = script_tmpl; *p && o < sizeof path - 80; p++) {
            if (p[0] == '%' && p[1] == 'm') { o += (size_t)snprintf(path + o, sizeof path - o, "%s", m); p++; }
            else if (p[0] == '%' && p[1] == 't') { o += (size_t)snprintf(path + o, sizeof path - o, "%.64s", tokens[i]); p++; }
            else path[o++] = *p;
        }
        path[o] = 0;
    } else {
        snprintf(path, sizeof path, "%s", big_url);
    }
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path,
                     inet_ntoa(server), http_port);
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) { fail(c, "http send"); return; } /* a fresh socket's buffer holds it */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(c - cl)};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Status 200 and Content-Length from a complete head; 0 when the status is not 200. */
static int parse_head(client_t *c, size_t head_len) {
    c->hbuf[head_len - 1] = 0;
    char *sp = strchr(c->hbuf, ' ');
    if (!sp || strncmp(sp, " 200", 4) != 0 || (sp[4] != ' ' && sp[4] != '\r')) return 0;
    for (char *l = strstr(c->hbuf, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0) c->clen = atoll(l + 17);
    return 1;
}

static void http_finish_script(client_t *c, int eof) {
    char *body = c->hbuf + c->have_head;
    size_t blen = c->hlen - (size_t)c->have_head;
    if (!eof && (c->clen < 0 || (long long)blen < c->clen)) return;
    if (c->clen >= 0 && (long long)blen != c->clen) { fail(c, "http script length"); return; }
    int ok = blen >= 6 && memcmp(body, "#!ipxe", 6) == 0;
    if (ok && check_mac) {
        uint8_t mac[6]; mac_of((int)(c - cl), mac);
        char m[18];
        snprintf(m, sizeof m, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        ok = memmem(body, blen, m, 17) != NULL;
    }
    if (!ok) { fail(c, "http body is not this machine's iPXE script"); return; }
    close_fd(c);
    free(c->hbuf); c->hbuf = NULL;
    c->t[3] = now();
    if (big_size > 0) { c->stage = S_FILE; start_http(c); return; }
    c->t[4] = c->t[3];
    c->stage = S_DONE;
    active--;
}

static void http_readable(client_t *c) {
    for (int k = 0; k < 4; k++) {
        ssize_t n;
        int eof = 0;
        if (c->stage == S_SCRIPT || !c->have_head) {
            if (c->hlen + 1 >= c->hcap) { fail(c, "http response too large"); return; }
            n = recv(c->fd, c->hbuf + c->hlen, c->hcap - 1 - c->hlen, 0);
        } else {
            n = recv(c->fd, rbuf, RBUF, 0);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            fail(c, "http recv error"); return;
        }
        if (n == 0) eof = 1;
        if (c->stage == S_SCRIPT || !c->have_head) {
            c->hlen += (size_t)n;
            if (!c->have_head) {
                c->hbuf[c->hlen] = 0;
                char *e = memmem(c->hbuf, c->hlen, "\r\n\r\n", 4);
                if (!e) { if (eof) { fail(c, "http closed before head"); return; } continue; }
                size_t hl = (size_t)(e - c->hbuf) + 4;
                if (!parse_head(c, hl)) { fail(c, "http status"); return; }
                c->have_head = (int)hl;
                if (c->stage == S_FILE) c->body = (long long)(c->hlen - hl);
            }
            if (c->stage == S_SCRIPT) { http_finish_script(c, eof); if (c->stage != S_SCRIPT) return; continue; }
        } else {
            c->body += n;
        }
        /* the large file */
        if (c->clen != big_size) { fail(c, "http file content-length"); return; }
        if (c->body > c->clen) { fail(c, "http file too long"); return; }
        if (c->body == c->clen) {
            close_fd(c);
            free(c->hbuf); c->hbuf = NULL;
            c->t[4] = now();
            c->stage = S_DONE;
            active--;
            return;
        }
        if (eof) { fail(c, "http file short"); return; }
    }
}

/* ------------------------------------------------------------------ main */
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stat_out(const char *name, double *xs, int n) {
    qsort(xs, (size_t)n, sizeof *xs, cmpd);
    if (!n) { printf(" median_%s_s=nan p99_%s_s=nan max_%s_s=nan", name, name, name); return; }
    int p = (int)ceil(0.99 * n) - 1;
    if (p < 0) p = 0;
    printf(" median_%s_s=%.3f p99_%s_s=%.3f max_%s_s=%.3f", name, xs[n / 2], name, xs[p], name, xs[n - 1]);
}

static void usage(const char *a0) {
    fprintf(stderr, "usage: %s --server ADDR --iface IF --boot-path FILE --tokens FILE [--clients N] [--deadline S] "
                    "[--boot-file NAME] [--script TMPL] [--check-mac] [--big-url PATH --big-size BYTES] "
                    "[--http-port P] [--blksize B] [--rcvbuf BYTES] [--start dhcp|tftp|http]\n", a0);
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check-mac")) { check_mac = 1; continue; }
        if (!v) usage(argv[0]);
        i++;
        if (!strcmp(a, "--server")) { if (!inet_aton(v, &server)) usage(argv[0]); }
        else if (!strcmp(a, "--iface")) iface = v;
        else if (!strcmp(a, "--clients")) nclients = atoi(v);
        else if (!strcmp(a, "--deadline")) deadline_s = atof(v);
        else if (!strcmp(a, "--boot-file")) boot_file = v;
        else if (!strcmp(a, "--boot-path")) boot_path = v;
        else if (!strcmp(a, "--tokens")) tokens_path = v;
        else if (!strcmp(a, "--script")) script_tmpl = v;
        else if (!strcmp(a, "--big-url")) big_url = v;
        else if (!strcmp(a, "--big-size")) big_size = atoll(v);
        else if (!strcmp(a, "--http-port")) http_port = atoi(v);
        else if (!strcmp(a, "--blksize")) blksize_req = atoi(v);
        else if (!strcmp(a, "--rcvbuf")) rcvbuf = atoi(v);
        else if (!strcmp(a, "--start")) start_stage = !strcmp(v, "tftp") ? S_TFTP : !strcmp(v, "http") ? S_SCRIPT : !strcmp(v, "dhcp") ? S_DHCP : -1;
        else usage(argv[0]);
    }
    if (!server.s_addr || !boot_path || !tokens_path || nclients <= 0 || nclients > 65536 || deadline_s <= 0 ||
        deadline_s > 3600 || strlen(boot_file) > 40 || start_stage < 0)
        usage(argv[0]);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    rbuf = malloc(RBUF);
    { /* the boot file's expected length and hash */
        FILE *f = fopen(boot_path, "rb");
        if (!f) { perror(boot_path); return 1; }
        hash_t h; hash_init(&h);
        size_t n;
        while ((n = fread(rbuf, 1, RBUF, f)) > 0) hash_update(&h, rbuf, n);
        fclose(f);
        boot_size = h.len;
        boot_hash = hash_final(&h);
    }
    tokens = calloc((size_t)nclients, sizeof *tokens);
    {
        FILE *f = fopen(tokens_path, "r");
        if (!f) { perror(tokens_path); return 1; }
        char line[256];
        for (int i = 0; i < nclients; i++) {
            if (!fgets(line, sizeof line, f)) { fprintf(stderr, "%s: %d tokens, need %d\n", tokens_path, i, nclients); return 1; }
            line[strcspn(line, "\r\n")] = 0;
            tokens[i] = strdup(line);
        }
        fclose(f);
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    dfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, big = 4 << 20;
    setsockopt(dfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(dfd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    if (setsockopt(dfd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface)) != 0) { perror("SO_BINDTODEVICE"); return 1; }
    setsockopt(dfd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(dfd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(68)};
    if (bind(dfd, (struct sockaddr *)&me, sizeof me) != 0) { perror("bind :68"); return 1; }
    struct epoll_event dev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, dfd, &dev);

    { uint32_t r = 0; int u = open("/dev/urandom", O_RDONLY); if (u >= 0) { if (read(u, &r, 4) != 4) r = 0; close(u); }
      xid_base = r ^ (uint32_t)now(); }
    cl = calloc((size_t)nclients, sizeof *cl);
    active = nclients;
    double start = now(), end = start + deadline_s;
    for (int i = 0; i < nclients; i++) {
        cl[i].fd = -1;
        cl[i].stage = S_DHCP;
        cl[i].xid = xid_base + (uint32_t)i;
        for (int k = 0; k < 5; k++) cl[i].t[k] = start;
        if (start_stage == S_DHCP) { send_discover(&cl[i], i); continue; }
        cl[i].stage = start_stage;
        if (start_stage == S_TFTP) start_tftp(&cl[i]);
        else start_http(&cl[i]);
    }

    struct epoll_event evs[256];
    double next_scan = start + 0.02;
    while (active > 0) {
        double t = now();
        if (t >= end) break;
        int ms = (int)((next_scan - t) * 1000) + 1;
        if (ms < 0) ms = 0;
        if (ms > 20) ms = 20;
        int n = epoll_wait(epfd, evs, 256, ms);
        for (int k = 0; k < n; k++) {
            uint64_t id = evs[k].data.u64;
            if (id == UINT64_MAX) { dhcp_readable(); continue; }
            client_t *c = &cl[id];
            if (c->fd < 0) continue; /* finished by an earlier event in this batch */
            if (c->stage == S_TFTP) tftp_readable(c);
            else if (c->stage == S_SCRIPT || c->stage == S_FILE) {
                if (evs[k].events & EPOLLOUT) http_request(c);
                else http_readable(c);
            }
        }
        t = now();
        if (t >= next_scan) { /* retransmissions due */
            next_scan = t + 0.02;
            for (int i = 0; i < nclients; i++) {
                client_t *c = &cl[i];
                if (!c->timer || t < c->timer) continue;
                if (c->stage == S_DHCP) {
                    if (++c->tries >= 4) { fail(c, "no OFFER"); continue; }
                    dhcp_retries++;
                    send_discover(c, i);
                } else if (c->stage == S_TFTP) {
                    if (++c->tries > 5) { fail(c, "tftp timeout"); continue; }
                    tftp_retransmits++;
                    tftp_send_last(c);
                } else {
                    c->timer = 0;
                }
            }
        }
    }
    double elapsed = now() - start;
    int all_done = active == 0;
    for (int i = 0; i < nclients; i++)
        if (cl[i].stage < S_DONE) { deadline_failed[cl[i].stage]++; fail(&cl[i], "deadline"); }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long done = 0, nfail = 0;
    for (int s = 0; s < NSTAGES; s++) nfail += failed[s];
    double *xs = malloc(sizeof *xs * (size_t)nclients);
    printf("clients=%d", nclients);
    for (int i = 0; i < nclients; i++) done += cl[i].stage == S_DONE;
    printf(" done=%ld failed=%ld", done, nfail);
    for (int s = 0; s < NSTAGES; s++) printf(" failed_%s=%ld", stage_name[s], failed[s]);
    for (int s = 0; s < NSTAGES; s++) printf(" deadline_%s=%ld", stage_name[s], deadline_failed[s]);
    printf(" all_done=%d seconds=%.3f", all_done, elapsed);
    /* per-client durations of the clients that finished: dhcp, tftp, script, file, http
     * (script + file, as the Python client's http), client (all) */
    static const struct { const char *name; int a, b; } spans[] = {
        {"dhcp", 0, 1}, {"tftp", 1, 2}, {"script", 2, 3}, {"file", 3, 4}, {"http", 2, 4}, {"client", 0, 4}};
    for (size_t s = 0; s < sizeof spans / sizeof *spans; s++) {
        int m = 0;
        for (int i = 0; i < nclients; i++)
            if (cl[i].stage == S_DONE) xs[m++] = cl[i].t[spans[s].b] - cl[i].t[spans[s].a];
        stat_out(spans[s].name, xs, m);
    }
    /* when the last finished client finished each stage, seconds from the start: how long
     * each phase of the storm as a whole lasted */
    static const char *ends[] = {NULL, "dhcp", "tftp", "script", "file"};
    for (int k = 1; k <= 4; k++) {
        double m = 0;
        for (int i = 0; i < nclients; i++)
            if (cl[i].stage == S_DONE && cl[i].t[k] - start > m) m = cl[i].t[k] - start;
        printf(" end_%s_s=%.3f", ends[k], m);
    }
    printf(" dhcp_retries=%ld offers_unmatched=%ld tftp_retransmits=%ld tftp_dup_blocks=%ld client_cpu_s=%.2f",
           dhcp_retries, offers_unmatched, tftp_retransmits, tftp_dups,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    /* reasons=STAGE:WHY:COUNT,... (spaces in WHY as _), "-" for none */
    printf(" reasons=%s", nreasons ? "" : "-");
    for (int k = 0; k < nreasons; k++) {
        printf("%s%s:", k ? "," : "", stage_name[reasons[k].stage]);
        for (const char *p = reasons[k].why; *p; p++) putchar(*p == ' ' ? '_' : *p);
        printf(":%ld", reasons[k].n);
    }
    printf("\n");
    return 0;
}
