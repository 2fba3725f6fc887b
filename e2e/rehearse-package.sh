#!/usr/bin/env bash
# The Debian package's own path rehearsed on a real systemd host, beside the
# deploy rehearsal (e2e/rehearse.sh) and on the same cached host image: the
# package scripts/package.sh builds, installed with dpkg -i; the conffile,
# amavis, the postfix milter and squid edited as the docs tell; config check;
# systemctl enable --now; a database of 3 M signatures (bench/gensigs, made
# once here and copied in); EICAR through each client; systemctl reload and a
# database update under load with no failed scan; systemctl restart; apt-get
# purge leaving nothing. Each step is in e2e/package-inside.sh.
#
#   e2e/rehearse-package.sh   (as root; E2E_CACHE, E2E_KEEP=1 as for e2e/rehearse.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
source e2e/lib.sh
steps=package-inside.sh
requirements
host_image

step "clamgate as its Debian package, and a database of 3 M signatures"
build_package
mkdir -p "$work/e2e/db" "$work/e2e/before/etc/systemd/system"
go run ./bench/gensigs -dir "$work/e2e/db" -body 1000000 -hashes 2000000
cp e2e/inside.sh e2e/package-inside.sh "$work/e2e/"
cp e2e/host/before/etc/systemd/system/rehearsal-origin.service "$work/e2e/before/etc/systemd/system/"
echo "  $(ls "$work/e2e/db" | paste -sd' ' -): $(du -sm "$work/e2e/db" | cut -f1) MiB"

step "boot the host"
boot_host
podman cp "$work/e2e" "$name:/root/e2e"
podman cp "$work/clamgate.deb" "$name:/root/clamgate.deb"
steps=inside.sh inside wait first

step "dpkg -i"
inside install
step "configure: clamgate.toml, amavis, postfix, squid as the docs tell; clamgate config check"
inside configure
step "systemctl enable --now clamgate"
inside start
step "the engine: its own unit, user, cgroup and memory budget"
inside engine
step "EICAR and clean through amavis, the postfix milter and squid"
inside scans
step "systemctl reload and a database update, under load"
inside reload
step "systemctl restart clamgate"
inside restart
step "apt-get purge clamgate"
inside purge

step "figures"
podman exec "$name" cat /root/e2e/figures | sed 's/^/  /'
step "packaged path rehearsed"
