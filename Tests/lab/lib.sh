# Helpers shared by the lab tests (POSIX sh, inside the lab; source it).
current_step=start

step() { current_step=$*; echo "== $*"; }

# Waits up to $2 seconds (0.05 s steps) for the shell condition $1.
wait_for() {
    n=$(awk "BEGIN { print int($2 / 0.05) }")
    i=0
    while ! eval "$1"; do
        i=$((i + 1)); [ $i -le "$n" ] || return 1
        sleep 0.05
    done
}

# Devices of flowctl's flowtable, one per line, sorted (nothing when absent).
ft_devices() {
    nft list flowtable inet flowctl fastpath 2>/dev/null | sed -n 's/.*devices = { \(.*\) }.*/\1/p' | tr ',' '\n' | tr -d ' ' | sed '/^$/d' | sort
}

# A workspace for a test that runs the daemon: `work` (from the name given),
# the state dir, control socket and log in it, exported for the CLI.
daemon_workspace() {
    FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
    work=$(mktemp -d "/tmp/flowctl-$1.XXXXXX")
    state=$work/state
    sock=$work/control.sock
    log=$work/daemon.log
    export FLOWCTL_CONTROL_SOCKET=$sock FLOWCTL_STATE_DIR=$state
    daemon_pid=
}

# Ends the test naming the step, with the daemon's log and the ruleset.
fail() {
    echo "FAIL [$current_step]: $*" >&2
    echo "--- daemon log (tail)" >&2
    tail -n 40 "$log" >&2 2>/dev/null || true
    echo "--- ruleset" >&2
    nft list ruleset >&2 || true
    exit 1
}
