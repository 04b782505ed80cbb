// Thin shim over libnftnl. Only FlowctlLinux imports this module.
#ifndef FLOWCTL_CLIBNFTNL_SHIM_H
#define FLOWCTL_CLIBNFTNL_SHIM_H
// glibc first: linux/libc-compat.h then skips the uapi duplicates of in.h.
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/flowtable.h>
#include <libnftnl/gen.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#endif
