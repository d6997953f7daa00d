/* The floor of a ProxyDHCP answer on this machine: a responder that does nothing but wait in
 * recvmsg(2) and sendto(2) a canned OFFER back to where the request came from (perfdhcp acts
 * as a relay, so that is its giaddr, port 67). No parsing, no policy, no state. bench/floor.py
 * measures its CPU per answer beside dnsmasq's and bootpolicy's; the difference to it is what
 * a server's own work costs. Usage: floor_responder IFNAME (binds 0.0.0.0:67 on that device;
 * run it only inside the bench's namespace). */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, argv[1], strlen(argv[1])) != 0) return 1;
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(67)};
    if (bind(fd, (struct sockaddr *)&any, sizeof any) != 0) return 1;
    static const unsigned char options[] = {53, 1, 2, 54, 4, 192, 168, 78, 1, 60, 9,
                                            'P', 'X', 'E', 'C', 'l', 'i', 'e', 'n', 't', 255};
    unsigned char packet[2048], control[128];
    for (;;) {
        struct sockaddr_in source;
        struct iovec iov = {packet, sizeof packet};
        struct msghdr header = {.msg_name = &source, .msg_namelen = sizeof source, .msg_iov = &iov,
                                .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        ssize_t n = recvmsg(fd, &header, 0);
        if (n < 240) continue;
        packet[0] = 2; /* BOOTREPLY; xid, chaddr and giaddr stay as sent */
        memcpy(packet + 240, options, sizeof options);
        sendto(fd, packet, 300, MSG_DONTWAIT, (struct sockaddr *)&source, sizeof source);
    }
}
