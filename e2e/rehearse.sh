#!/usr/bin/env bash
# The migration rehearsed end to end on a real systemd host: a Debian 12 root
# filesystem (mmdebstrap) booted with systemd as PID 1 under podman, set up
# as a typical mail and proxy server, then `clamgate deploy apply --activate`,
# a reboot, a freshclam-style update and `clamgate deploy rollback
# --activate`, each step checked with its evidence (e2e/inside.sh).
#
#   e2e/rehearse.sh        (as root; E2E_CACHE=/var/cache/clamgate-e2e, E2E_KEEP=1 keeps the host on failure)
#
# The host image is cached (e2e/lib.sh); e2e/rehearse-package.sh boots the
# same image for the Debian package's own path.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
source e2e/lib.sh
requirements
host_image

step "clamgate from this tree, as its Debian package, and the synthetic signature database"
build_package
mkdir -p "$work/e2e/db"
go run ./bench/gensigs -dir "$work/e2e/db" -body 50000 -hashes 50000
cp e2e/inside.sh deploy/image/build.sh "$work/e2e/"
cp -r e2e/host/before "$work/e2e/before"
echo "  $(ls "$work/e2e/db" | paste -sd' ' -): $(cat "$work"/e2e/db/* | wc -l) signatures, plus EICAR"

step "boot the host"
boot_host
podman cp "$work/e2e" "$name:/root/e2e"
podman cp "$work/clamgate.deb" "$name:/root/clamgate.deb"
inside wait first

step "before: a typical mail and proxy server"
inside setup
inside scans before
step "before: RAM of every scanning process"
inside ram before

step "apply: clamgate deploy plan, apply --activate"
inside apply
step "apply: the engine"
inside engine
step "apply: the same cases through clamgate"
inside scans after
step "apply: doctor"
inside doctor
step "apply: a restart under load refuses no connection (clamgate.socket)"
inside restart
step "apply: RAM of every scanning process"
inside ram after

step "reboot: restart the host"
# squid alone waits up to 30 s for its clients when it stops: give systemd time for a clean shutdown.
podman restart -t 90 "$name" >/dev/null
inside reboot-check
inside doctor
inside scans reboot

step "freshclam update: a new signature, tmp file then rename"
inside update

step "rollback: clamgate deploy rollback --activate"
inside rollback
inside compare
inside scans rollback

step "RAM, every scanning process (KiB)"
read -r rss_before pss_before < <(podman exec "$name" cat /root/e2e/ram-before)
read -r rss_after pss_after < <(podman exec "$name" cat /root/e2e/ram-after)
printf '  before: RSS %s KiB, PSS %s KiB\n  after:  RSS %s KiB, PSS %s KiB\n' "$rss_before" "$pss_before" "$rss_after" "$pss_after"
awk -v b="$pss_before" -v a="$pss_after" 'BEGIN {printf "  after/before (PSS): %.2f\n", a / b}'

step "rehearsal passed"
