// Batched UDP I/O for the traffic generators: sendmmsg/recvmmsg are GNU
// extensions that Swift's Glibc module does not import. No pointers are
// kept: every call works on the caller's buffers and returns.
#ifndef FLOWCTL_NET_H
#define FLOWCTL_NET_H
#include <stddef.h>
#include <stdint.h>

// Sends `count` datagrams on a connected socket with one sendmmsg call.
// Datagram i carries `len` bytes of `payload`, with its first 8 bytes (when
// len >= 8) set to seq + i (little endian). Returns how many were sent, or -errno.
int flowctl_send_batch(int fd, const uint8_t *payload, size_t len, unsigned count, uint64_t seq);

// Receives up to `count` datagrams with one recvmmsg call (MSG_WAITFORONE).
// `buffer` holds count slots of `slot` bytes. Writes each datagram's length
// to lengths[i] and its source port to ports[i]. Returns how many, or -errno.
int flowctl_recv_batch(int fd, uint8_t *buffer, size_t slot, unsigned count, uint32_t *lengths, uint16_t *ports);
#endif

#ifndef FLOWCTL_NET_TAP_H
#define FLOWCTL_NET_TAP_H
// Attaches to an existing tap device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): returns the fd or -errno.
int flowctl_tap_open(const char *name);
// Moves the calling thread into the network namespace at `path` (/run/netns/NAME): 0 or -errno.
int flowctl_setns_net(const char *path);
// A raw AF_PACKET socket bound to `ifname` (all protocols, PACKET_VNET_HDR,
// not seeing its own transmissions): the fd or -errno.
int flowctl_packet_socket(const char *ifname);
#endif

#ifndef FLOWCTL_NET_PEER_H
#define FLOWCTL_NET_PEER_H
#include <sys/types.h>
// The credentials of a Unix socket's peer (SO_PEERCRED: struct ucred is
// hidden behind _GNU_SOURCE from Swift's Glibc module): 0 or -errno.
int flowctl_peer_credentials(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
#endif
