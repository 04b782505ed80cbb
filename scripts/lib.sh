# Shared helpers for scripts/test, scripts/quickstart and friends.
# Source it from bash: . "$(dirname "$0")/lib.sh"

# The repository's root (this file lives in scripts/).
FLOWCTL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# What building, testing and the lab need (the lab sees the host's programs).
FLOWCTL_APT_PACKAGES=(
    libnl-3-dev libnl-route-3-dev libnftnl-dev libmnl-dev pkg-config
    nftables iproute2 conntrack xz-utils iputils-ping socat kmod curl jq
    ethtool systemd util-linux debootstrap binutils
)

flowctl_say() { printf '==> %s\n' "$*" >&2; }
flowctl_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Fails loudly unless running as root. $1: what needs it.
flowctl_require_root() {
    [ "$(id -u)" -eq 0 ] || flowctl_die "${1:-this} must run as root (network namespaces, nftables and the lab kernel need it); try: sudo $0"
}

# Installs the missing ones of FLOWCTL_APT_PACKAGES (and any extra names
# given), running apt-get only when something is missing.
flowctl_install_deps() {
    local missing=() pkg
    for pkg in "${FLOWCTL_APT_PACKAGES[@]}" "$@"; do
        [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || flowctl_die "missing packages ${missing[*]} and no apt-get to install them"
    flowctl_say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || flowctl_die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || flowctl_die "apt-get install ${missing[*]} failed"
}

# Fails loudly unless a Swift toolchain is on PATH.
flowctl_require_swift() {
    command -v swift >/dev/null \
        || flowctl_die "no swift on PATH (install a Swift 6 toolchain from swift.org, e.g. into /opt/swift, and add its usr/bin to PATH)"
}

# Succeeds when this kernel can create an nft flowtable. Probed in a
# throwaway network namespace, so the host's ruleset is never touched.
flowctl_host_has_flowtables() {
    local ns="flowctl-probe-$$-$RANDOM" ok=1
    ip netns add "$ns" 2>/dev/null || return 1
    if ip netns exec "$ns" nft -f - >/dev/null 2>&1 <<'NFT'
table inet flowctl_probe {
    flowtable ft { hook ingress priority 0; devices = { lo }; }
}
NFT
    then ok=0; fi
    ip netns del "$ns" 2>/dev/null || true
    return $ok
}

# Succeeds when this kernel can create an 802.1Q VLAN device (same probe style).
flowctl_host_has_vlan() {
    local ns="flowctl-probe-$$-$RANDOM" ok=1
    ip netns add "$ns" 2>/dev/null || return 1
    if ip -n "$ns" link add probe0 type dummy 2>/dev/null \
        && ip -n "$ns" link add link probe0 name probe0.10 type vlan id 10 2>/dev/null; then ok=0; fi
    ip netns del "$ns" 2>/dev/null || true
    return $ok
}
