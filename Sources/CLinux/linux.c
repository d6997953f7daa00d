#define _GNU_SOURCE
#include "CLinux.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
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
