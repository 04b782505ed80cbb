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
