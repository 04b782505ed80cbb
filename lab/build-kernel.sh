#!/bin/sh
# Builds the lab kernel (User-Mode Linux 6.12 with nf_tables flowtables,
# 802.1Q, bridges, conntrack, pktgen, and lab2's netdevsim, policy and
# multipath routing, VRF, bonding, legacy firewalls, tc...) from Debian's
# linux-source-6.12: ARCH=um defconfig merged with the config fragment next
# to this script (flowlab.config, lab2's). About 10 minutes on 2 cores, 2 GB of scratch space.
# Usage: lab/build-kernel.sh OUTFILE   (scripts/lab calls it when no
# prebuilt kernel is found, and caches the result by the fragment's hash)
set -eu
out=${1:?usage: lab/build-kernel.sh OUTFILE}
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
missing=
for pkg in linux-source-6.12 bc flex bison build-essential xz-utils; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "lab/build-kernel.sh: installing$missing" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
source_tar=$(ls /usr/src/linux-source-6.12*.tar.xz | head -n 1)
work=$(mktemp -d /var/tmp/flowctl-kernel-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "lab/build-kernel.sh: unpacking $source_tar" >&2
tar -C "$work" -xf "$source_tar"
cd "$work"/linux-source-6.12*
make ARCH=um defconfig >/dev/null
./scripts/kconfig/merge_config.sh -m -O . .config "$here/flowlab.config" >/dev/null
make ARCH=um olddefconfig >/dev/null
# Every option of the fragment must have survived (a missing dependency
# silently drops one).
bad=0
while IFS= read -r line; do
    case $line in CONFIG_*=*) ;; *) continue ;; esac
    name=${line%%=*} value=${line#*=}
    if [ "$value" = n ]; then
        if grep -q "^$name=" .config; then echo "lab/build-kernel.sh: $name is set, fragment wants n" >&2; bad=1; fi
    elif ! grep -qx "$line" .config; then
        echo "lab/build-kernel.sh: $line did not make it into .config ($(grep "^$name=\|# $name " .config || echo unset))" >&2; bad=1
    fi
done <"$here/flowlab.config"
[ "$bad" -eq 0 ] || { echo "lab/build-kernel.sh: the config fragment does not apply cleanly" >&2; exit 1; }
echo "lab/build-kernel.sh: building (make ARCH=um -j$(nproc) linux)" >&2
make ARCH=um -j"$(nproc)" linux >/dev/null
mkdir -p "$(dirname "$out")"
strip -o "$out.tmp" linux
mv "$out.tmp" "$out"
echo "$out"
