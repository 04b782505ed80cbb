#!/usr/bin/env python3
"""Captures real kernel netlink messages for the fuzzers' seed corpus.

Run inside the lab kernel (root, throwaway):
    scripts/lab -- python3 Fuzz/capture-corpus.py > corpus.json
scripts/fuzz --capture does this and writes Fuzz/corpus/TARGET/*.bin.

Listens to nftables notifications (NFNLGRP_NFTABLES) and rtnetlink groups
(links, addresses, routes, neighbours, nexthops, bridge VLANs) while it
makes a bridge, VLANs, veths, routes, a nexthop and an nftables table with
a flowtable; dumps conntrack after inserting entries; and asks nftables for
a table that does not exist, for an error with an extended ack. Prints
{"target": [base64 message, ...]} on stdout."""
import base64
import json
import socket
import struct
import subprocess
import time

NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NETLINK_EXT_ACK = 270, 1, 11
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300
RTNL_GROUPS = [1, 3, 5, 7, 9, 11, 32, 33]  # LINK NEIGH IPV4_IFADDR IPV4_ROUTE IPV6_IFADDR IPV6_ROUTE NEXTHOP BRVLAN


def listener(protocol, groups):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    for group in groups:
        s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    s.setblocking(False)
    return s


def datagrams(s):
    found = []
    while True:
        try:
            found.append(s.recv(1 << 20))
        except BlockingIOError:
            return found


def messages(datagram):
    out, offset = [], 0
    while offset + 16 <= len(datagram):
        length = struct.unpack_from("=I", datagram, offset)[0]
        if length < 16 or offset + length > len(datagram):
            break
        out.append(datagram[offset:offset + length])
        offset += (length + 3) & ~3
    return out


def sh(command):
    subprocess.run(command, shell=True, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def request(protocol, message_type, flags, payload, ext_ack=False):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    s.bind((0, 0))
    if ext_ack:
        s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    header = struct.pack("=IHHII", 16 + len(payload), message_type, flags, 1, 0)
    s.send(header + payload)
    s.settimeout(2)
    replies = []
    try:
        while True:
            datagram = s.recv(1 << 20)
            replies.append(datagram)
            types = [struct.unpack_from("=H", m, 4)[0] for m in messages(datagram)]
            if 2 in types or 3 in types:  # NLMSG_ERROR, NLMSG_DONE
                break
    except socket.timeout:
        pass
    s.close()
    return replies


def attribute(kind, value):
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * ((4 - length % 4) % 4)


nft = listener(NETLINK_NETFILTER, [7])
rtnl = listener(NETLINK_ROUTE, RTNL_GROUPS)
for command in [
    "sysctl -qw net.ipv4.ip_forward=1",
    "ip link add br0 type bridge vlan_filtering 1", "ip link set br0 up",
    "ip link add vnet0 type veth peer name vnet1", "ip link set vnet0 master br0", "ip link set vnet0 up",
    "bridge vlan add dev vnet0 vid 10", "bridge vlan add dev br0 vid 10 self",
    "ip link add link br0 name br0.10 type vlan id 10", "ip link set br0.10 up",
    "ip addr add 198.18.10.1/24 dev br0.10", "ip -6 addr add 2001:2:0:10::1/64 dev br0.10 nodad",
    "ip link add up0 type dummy", "ip link set up0 up", "ip addr add 198.18.20.1/24 dev up0",
    "ip route add default via 198.18.20.2 dev up0", "ip -6 route add 2001:2:0:30::/64 dev up0",
    "ip route append 198.18.30.0/24 nexthop via 198.18.20.3 dev up0 nexthop via 198.18.20.4 dev up0",
    "ip neigh add 198.18.20.2 lladdr 02:00:00:00:00:02 dev up0",
    "ip nexthop add id 7 via 198.18.20.5 dev up0", "ip route add 198.18.40.0/24 nhid 7", "ip nexthop del id 7",
    "nft add table inet t", "nft add flowtable inet t ft '{ hook ingress priority 0; devices = { vnet0, up0 }; counter; }'",
    "nft add chain inet t fwd '{ type filter hook forward priority 0; policy accept; }'",
    "nft add set inet t ports '{ type ifname; elements = { \"vnet0\" }; }'",
    "nft add rule inet t fwd iifname @ports ct direction original meta l4proto tcp counter flow add @ft comment '\"x\"'",
    "nft delete table inet t",
    "ip link set vnet0 nomaster", "ip link del vnet0", "ip route flush dev up0", "ip link del br0",
]:
    sh(command)
    time.sleep(0.02)
time.sleep(0.3)

corpus = {"nft-notification": [], "rtnetlink": [], "conntrack": [], "netlink-replies": [], "netlink-attributes": []}
for datagram in datagrams(nft):
    corpus["nft-notification"] += messages(datagram)
for datagram in datagrams(rtnl):
    corpus["rtnetlink"] += messages(datagram)

for port in range(1, 9):
    sh(f"conntrack -I -p udp -s 198.18.0.1 -d 198.18.0.2 --sport {port} --dport 9 -t 100")
    sh(f"conntrack -I -p tcp -s 198.18.0.1 -d 198.18.0.2 --sport {port} --dport 80 --state ESTABLISHED -t 100")
# IPCTNL_MSG_CT_GET dump (NFNL_SUBSYS_CTNETLINK << 8 | 1), nfgenmsg AF_UNSPEC.
dump = request(NETLINK_NETFILTER, (1 << 8) | 1, NLM_F_REQUEST | NLM_F_DUMP, struct.pack("=BBH", 0, 0, 0))
corpus["netlink-replies"] += dump
for datagram in dump:
    corpus["conntrack"] += [m for m in messages(datagram) if struct.unpack_from("=H", m, 4)[0] >> 8 == 1]
# NFT_MSG_GETTABLE (NFNL_SUBSYS_NFTABLES << 8 | 1) for a missing table: an error with an extended ack.
missing = request(NETLINK_NETFILTER, (10 << 8) | 1, NLM_F_REQUEST | NLM_F_ACK,
                  struct.pack("=BBH", 1, 0, 0) + attribute(1, b"no-such-table\0"), ext_ack=True)
corpus["netlink-replies"] += missing
# The attribute sections alone (after the 16-byte header and a 4-byte family header).
for message in corpus["nft-notification"] + corpus["conntrack"]:
    corpus["netlink-attributes"].append(message[20:])

print(json.dumps({target: [base64.b64encode(bytes(m)).decode() for m in found] for target, found in corpus.items()}))
