// Thin shim over libmnl. Only FlowctlLinux imports this module.
#ifndef FLOWCTL_CLIBMNL_SHIM_H
#define FLOWCTL_CLIBMNL_SHIM_H
// glibc first: linux/libc-compat.h then skips the uapi duplicates of in.h.
#include <sys/socket.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <unistd.h>

// MNL_SOCKET_BUFFER_SIZE is a macro over sysconf(); Swift cannot import it.
static inline size_t flowctl_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
// MNL_SOCKET_DUMP_SIZE likewise (32 KiB, the size the kernel uses for dumps).
static inline size_t flowctl_mnl_socket_dump_size(void) { return 32768; }
#endif
