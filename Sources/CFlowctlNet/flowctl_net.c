#define _GNU_SOURCE
#include "flowctl_net.h"
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define FLOWCTL_MAX_BATCH 1024

int flowctl_send_batch(int fd, const uint8_t *payload, size_t len, unsigned count, uint64_t seq) {
    static __thread uint8_t bufs[FLOWCTL_MAX_BATCH][64];
    struct mmsghdr msgs[FLOWCTL_MAX_BATCH];
    struct iovec iov[FLOWCTL_MAX_BATCH];
    if (count > FLOWCTL_MAX_BATCH) count = FLOWCTL_MAX_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        if (len >= 8 && len <= sizeof(bufs[i])) {
            memcpy(bufs[i], payload, len);
            uint64_t value = seq + i;
            memcpy(bufs[i], &value, 8);
            iov[i].iov_base = bufs[i];
        } else {
            iov[i].iov_base = (void *)payload;
        }
        iov[i].iov_len = len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd, msgs, count, 0);
    return sent < 0 ? -errno : sent;
}

int flowctl_recv_batch(int fd, uint8_t *buffer, size_t slot, unsigned count, uint32_t *lengths, uint16_t *ports) {
    struct mmsghdr msgs[FLOWCTL_MAX_BATCH];
    struct iovec iov[FLOWCTL_MAX_BATCH];
    struct sockaddr_storage from[FLOWCTL_MAX_BATCH];
    if (count > FLOWCTL_MAX_BATCH) count = FLOWCTL_MAX_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * count);
    for (unsigned i = 0; i < count; i++) {
        iov[i].iov_base = buffer + (size_t)i * slot;
        iov[i].iov_len = slot;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    int received = recvmmsg(fd, msgs, count, MSG_WAITFORONE, NULL);
    if (received < 0) return -errno;
    for (int i = 0; i < received; i++) {
        lengths[i] = msgs[i].msg_len;
        if (from[i].ss_family == AF_INET)
            ports[i] = ntohs(((struct sockaddr_in *)&from[i])->sin_port);
        else if (from[i].ss_family == AF_INET6)
            ports[i] = ntohs(((struct sockaddr_in6 *)&from[i])->sin6_port);
        else
            ports[i] = 0;
    }
    return received;
}

#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

int flowctl_tap_open(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    // With a virtio-net header on every frame, as QEMU uses it: checksum
    // offload state (CHECKSUM_PARTIAL) and GSO survive the trip.
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int flowctl_setns_net(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    return rc < 0 ? -e : 0;
}

int flowctl_packet_socket(const char *ifname) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return -errno;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = (int)if_nametoindex(ifname);
    if (address.sll_ifindex == 0) { close(fd); return -ENODEV; }
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0) { int e = errno; close(fd); return -e; }
    // What we send on this device must not come back to us (a relay loop).
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0) { int e = errno; close(fd); return -e; }
    // The same virtio-net header the tap carries (see flowctl_tap_open).
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int flowctl_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -errno;
    if (length != sizeof(credentials)) return -EINVAL;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}
