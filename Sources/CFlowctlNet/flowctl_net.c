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
