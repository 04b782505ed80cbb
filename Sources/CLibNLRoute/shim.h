// Thin shim over libnl-3 / libnl-route-3 (and the ethtool ioctl, whose
// variable-length structs Swift cannot build). Only FlowctlLinux imports this module.
#ifndef FLOWCTL_CLIBNLROUTE_SHIM_H
#define FLOWCTL_CLIBNLROUTE_SHIM_H
// glibc first: linux/libc-compat.h then skips the uapi duplicates.
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/if.h>  // after net/if.h: libc-compat skips the duplicates; IFF_LOWER_UP, IF_OPER_*
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
#include <netlink/route/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/nexthop.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

// Index of a feature name in the kernel's netdev feature strings
// (ETH_SS_FEATURES; the same table for every device), or -errno.
static inline int flowctl_ethtool_feature_index(int fd, const char *ifname, const char *feature) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    struct { struct ethtool_sset_info hdr; __u32 count; } sset;
    memset(&sset, 0, sizeof(sset));
    sset.hdr.cmd = ETHTOOL_GSSET_INFO;
    sset.hdr.sset_mask = 1ULL << ETH_SS_FEATURES;
    ifr.ifr_data = (void *)&sset;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) return -errno;
    if (!sset.hdr.sset_mask || sset.count == 0) return -EOPNOTSUPP;
    __u32 count = sset.count;
    struct ethtool_gstrings *strings = calloc(1, sizeof(*strings) + (size_t)count * ETH_GSTRING_LEN);
    if (!strings) return -ENOMEM;
    strings->cmd = ETHTOOL_GSTRINGS;
    strings->string_set = ETH_SS_FEATURES;
    strings->len = count;
    ifr.ifr_data = (void *)strings;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) { int e = errno; free(strings); return -e; }
    int index = -ENOENT;
    for (__u32 i = 0; i < count; i++) {
        if (strncmp((const char *)strings->data + (size_t)i * ETH_GSTRING_LEN, feature, ETH_GSTRING_LEN) == 0) {
            index = (int)i;
            break;
        }
    }
    free(strings);
    return index;
}

// 1 when feature `index` is active on the device, 0 when not, or -errno.
static inline int flowctl_ethtool_feature_active(int fd, const char *ifname, int index) {
    if (index < 0) return -EINVAL;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    __u32 blocks = (__u32)index / 32 + 1;
    struct ethtool_gfeatures *features =
        calloc(1, sizeof(*features) + blocks * sizeof(struct ethtool_get_features_block));
    if (!features) return -ENOMEM;
    features->cmd = ETHTOOL_GFEATURES;
    features->size = blocks;
    ifr.ifr_data = (void *)features;
    if (ioctl(fd, SIOCETHTOOL, &ifr) < 0) { int e = errno; free(features); return -e; }
    int on = (int)((features->features[index / 32].active >> (index % 32)) & 1u);
    free(features);
    return on;
}
#endif
