#!/usr/bin/env bash
# Builds the scanning pool's image (deploy/helm/clamgate) from this host's
# own clamd, freshclam and their libraries, and a clamgate binary, for
# hosts that cannot pull images: podman import of a root filesystem, as
# build.sh does for deploy's engine image. Prints the reference pinned by
# digest (values: image.repository and image.digest).
#   deploy/image/build-pool.sh [TAG] [CLAMGATE-BINARY]
# No shell, no package manager: the pod's containers run /usr/bin/clamgate,
# /usr/sbin/clamd or /usr/bin/freshclam directly, as the uids the chart
# gives them (no user of the image's own).
set -euo pipefail
tag=${1:-localhost/clamgate/pool:local}
bin=${2:-}
rootfs=$(mktemp -d)
chmod 0755 "$rootfs" # mktemp makes it 0700, and tar gives that mode to the image's /
trap 'rm -rf "$rootfs"' EXIT
if [[ -z $bin ]]; then
  bin=$rootfs.clamgate
  trap 'rm -rf "$rootfs" "$bin"' EXIT
  go build -trimpath -o "$bin" ./cmd/clamgate
fi

copy() { mkdir -p "$rootfs$(dirname "$1")"; cp -L "$1" "$rootfs$1"; }
install -D -m 0755 "$bin" "$rootfs/usr/bin/clamgate"
for exe in "$bin" /usr/sbin/clamd /usr/bin/freshclam; do
  [[ $exe == "$bin" ]] || copy "$exe"
  for lib in $(ldd "$exe" 2>/dev/null | grep -o '/[^ ]*'); do copy "$lib"; done
done
for f in /lib/x86_64-linux-gnu/libnss_files.so.2 /etc/ssl/certs/ca-certificates.crt; do [[ -e $f ]] && copy "$f"; done
mkdir -p "$rootfs"/{etc/clamgate/tls,etc/clamd,etc/clamav,tmp,run/clamd,var/lib/clamav}
# /run/clamd and /tmp are emptyDirs in the pod; podman kube play makes them
# volumes with the image directory's mode, where Kubernetes makes them 0777:
# 1777 works under both.
chmod 1777 "$rootfs/tmp" "$rootfs/run/clamd"
# Names for the chart's default uids (logs and ps read better); any uid runs.
printf 'root:x:0:0::/:/sbin/nologin\nclamgate:x:10001:10000::/nonexistent:/sbin/nologin\nclamd:x:10002:10000::/nonexistent:/sbin/nologin\nfreshclam:x:10003:10000::/nonexistent:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nclamgate:x:10000:\n' > "$rootfs/etc/group"
printf 'hosts: files dns\npasswd: files\ngroup: files\n' > "$rootfs/etc/nsswitch.conf"
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | podman import --quiet - "$tag" >/dev/null
digest=$(podman image inspect --format '{{.Digest}}' "$tag")
echo "${tag%%:*}@$digest"
