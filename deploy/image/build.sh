#!/usr/bin/env bash
# Builds a minimal clamd image from this host's own clamd binary and its
# libraries, for hosts that cannot pull the upstream image; prints the
# reference pinned by digest for `clamgate deploy apply --image`.
# No shell, no package manager, no entrypoint: clamgate-clamd.service runs
# /usr/sbin/clamd directly as the host's clamav user.
set -euo pipefail
tag=${1:-localhost/clamgate/clamd:local}
clamd=$(command -v clamd || echo /usr/sbin/clamd)
rootfs=$(mktemp -d)
chmod 0755 "$rootfs" # mktemp makes it 0700, and tar gives that mode to the image's /: only root could enter it
trap 'rm -rf "$rootfs"' EXIT

copy() { mkdir -p "$rootfs$(dirname "$1")"; cp -L "$1" "$rootfs$1"; }
copy "$clamd"
mkdir -p "$rootfs/usr/sbin" && [[ "$clamd" == /usr/sbin/clamd ]] || cp -L "$clamd" "$rootfs/usr/sbin/clamd"
for lib in $(ldd "$clamd" | grep -o '/[^ ]*'); do copy "$lib"; done
# libnss for name lookups of the clamav user; clamd's TLS and certificates are not needed (no network).
for lib in /lib/x86_64-linux-gnu/libnss_files.so.2 /usr/lib/x86_64-linux-gnu/libnss_files.so.2; do [[ -e $lib ]] && copy "$lib"; done
uid=$(id -u clamav 2>/dev/null || echo 100); gid=$(id -g clamav 2>/dev/null || echo 101)
mkdir -p "$rootfs"/{etc,tmp,run,var/lib/clamav-ro,etc/clamgate-clamd}
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0::/:/sbin/nologin\nclamav:x:%s:%s::/var/lib/clamav-ro:/sbin/nologin\n' "$uid" "$gid" > "$rootfs/etc/passwd"
printf 'root:x:0:\nclamav:x:%s:\n' "$gid" > "$rootfs/etc/group"
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | podman import --quiet - "$tag" >/dev/null
digest=$(podman image inspect --format '{{.Digest}}' "$tag")
echo "${tag%%:*}@$digest"
