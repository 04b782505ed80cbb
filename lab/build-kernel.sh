#!/bin/sh
# Builds the lab kernel (User-Mode Linux 6.12 with nf_tables flowtables,
# 802.1Q, bridges, conntrack, pktgen...) from Debian's linux-source-6.12
# with the config fragment kept next to this script. About 10 minutes on
# 2 cores. Usage: lab/build-kernel.sh OUTFILE
set -eu
out=${1:?usage: lab/build-kernel.sh OUTFILE}
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s linux-source-6.12 >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends linux-source-6.12 bc flex bison build-essential xz-utils >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf /usr/src/linux-source-6.12.tar.xz
cd "$work"/linux-source-6.12
make ARCH=um defconfig >/dev/null
./scripts/kconfig/merge_config.sh -m -O . .config "$here/flowlab.config" >/dev/null
make ARCH=um olddefconfig >/dev/null
make ARCH=um -j"$(nproc)" linux >/dev/null
mkdir -p "$(dirname "$out")"
strip -o "$out.tmp" linux
mv "$out.tmp" "$out"
echo "$out"
