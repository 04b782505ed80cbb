// Thin shim over libnl-3 / libnl-route-3. Only FlowctlLinux imports this module.
#ifndef FLOWCTL_CLIBNLROUTE_SHIM_H
#define FLOWCTL_CLIBNLROUTE_SHIM_H
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/socket.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/addr.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#endif
