# Shared by the daemon benchmarks (POSIX sh, inside the lab; source it with
# `here` set): the binaries, and br0 with PORTS ports under a running daemon.
bin=${FLOWCTL_BIN_DIR:-$here/.build/release}
[ -x "$bin/flowctl" ] || bin=$here/.build/debug

# bench_daemon WORK PORTS [DAEMON ARG...]: br0 (pinned MAC) with PORTS dummy
# ports, uplink up0 with the default route, `flowctl daemon` on WORK/sock
# with br0 enabled; sets `pid`.
bench_daemon() {
    work=$1 ports=$2
    shift 2
    ip link add br0 address 02:00:00:00:00:01 type bridge
    ip link set br0 up
    ip link add up0 type dummy
    ip link set up0 up
    ip addr add 198.18.40.1/24 dev up0
    ip route add default via 198.18.40.2 dev up0
    i=0
    while [ $i -lt "$ports" ]; do echo "link add p$i master br0 up type dummy"; i=$((i + 1)); done > "$work/batch"
    ip -batch "$work/batch"
    "$bin/flowctl" daemon --state-dir "$work/state" --control-socket "$work/sock" --metrics-address "" \
        --log-level warning "$@" 2>"$work/log" &
    pid=$!
    while [ ! -S "$work/sock" ]; do sleep 0.05; done
    FLOWCTL_CONTROL_SOCKET=$work/sock "$bin/flowctl" enable br0 >/dev/null
}
