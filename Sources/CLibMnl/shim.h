// Thin shim over libmnl. Only FlowctlLinux imports this module.
#ifndef FLOWCTL_CLIBMNL_SHIM_H
#define FLOWCTL_CLIBMNL_SHIM_H
// glibc first: linux/libc-compat.h then skips the uapi duplicates of in.h.
#include <sys/socket.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <net/if.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <unistd.h>
#include <sys/syscall.h>

// MNL_SOCKET_BUFFER_SIZE is a macro over sysconf(); Swift cannot import it.
static inline size_t flowctl_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
// MNL_SOCKET_DUMP_SIZE likewise (32 KiB, the size the kernel uses for dumps).
static inline size_t flowctl_mnl_socket_dump_size(void) { return 32768; }
// The calling thread's id: nftables notifications name the committing
// thread (NFTA_GEN_PROC_PID is task_pid_nr(current)), not the process.
static inline pid_t flowctl_gettid(void) { return (pid_t)syscall(SYS_gettid); }
#endif
