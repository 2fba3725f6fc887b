#!/usr/bin/env bash
# The migration rehearsed end to end on a real systemd host: a Debian 12 root
# filesystem (mmdebstrap) booted with systemd as PID 1 under podman, set up
# as a typical mail and proxy server, then `clamgate deploy apply --activate`,
# a reboot, a freshclam-style update and `clamgate deploy rollback
# --activate`, each step checked with its evidence (e2e/inside.sh).
#
#   e2e/rehearse.sh        (as root; E2E_CACHE=/var/cache/clamgate-e2e, E2E_KEEP=1 keeps the host on failure)
#
# The root filesystem, with every package of e2e/host/packages installed, is
# cached as a tarball keyed by that list and imported once as an image of the
# same key: a cold run downloads and installs (minutes), a warm run boots at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
cache=${E2E_CACHE:-/var/cache/clamgate-e2e}
name=clamgate-e2e-$$
work=$(mktemp -d /tmp/clamgate-e2e.XXXXXX)
started=$SECONDS

step() { printf '\n=== %s (%ds)\n' "$1" $((SECONDS - started)); }
inside() { podman exec "$name" bash /root/e2e/inside.sh "$@"; }

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    echo "rehearsal FAILED (exit $rc); the host's journal, last lines:"
    podman exec "$name" journalctl --no-pager -n 60 -o short 2>/dev/null | cut -c1-220 || true
    if [[ ${E2E_KEEP:-} == 1 ]]; then
      echo "kept: podman exec -it $name bash   (then podman rm -f $name; rm -rf $work)"
      exit "$rc"
    fi
  fi
  podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

for tool in podman mmdebstrap go; do
  command -v "$tool" >/dev/null || { echo "rehearse: $tool is required (scripts/install-deps.sh --test)" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "rehearse: run as root (rootful podman)" >&2; exit 1; }

# The image: keyed by the package list and the recipe below.
recipe='mmdebstrap --variant=minbase bookworm (+updates, security); postfix preseeded Local only'
key=$(cat e2e/host/packages <(echo "$recipe") | sha256sum | cut -c1-16)
image=localhost/clamgate-e2e/host:$key
tarball=$cache/host-$key.tar
step "host image $image"
if ! podman image exists "$image"; then
  if [[ ! -s $tarball ]]; then
    echo "  building $tarball with mmdebstrap (cold cache: downloads and installs every package)"
    mkdir -p "$cache"
    mmdebstrap --variant=minbase --include="$(grep -v '^#' e2e/host/packages | paste -sd, -)" \
      --essential-hook='printf "postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string mail.rehearsal.test\n" | chroot "$1" debconf-set-selections' \
      bookworm "$work/host.tar" \
      "deb http://deb.debian.org/debian bookworm main" "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main" > "$work/mmdebstrap.log" 2>&1 ||
      { tail -n 30 "$work/mmdebstrap.log"; exit 1; }
    mv "$work/host.tar" "$tarball"
  fi
  podman import --quiet "$tarball" "$image" >/dev/null
fi
echo "  $(podman image inspect --format '{{.Id}}' "$image" | cut -c1-12), from $tarball"

step "clamgate from this tree, as its Debian package, and the synthetic signature database"
# The host installs clamgate the way an administrator would: the package
# scripts/package.sh builds (lintian runs in scripts/test-package.sh).
bash scripts/package.sh --no-lint | sed 's/^/  /'
cp "$(ls -t dist/clamgate_*.deb | head -n 1)" "$work/clamgate.deb"
mkdir -p "$work/e2e/db"
go run ./bench/gensigs -dir "$work/e2e/db" -body 50000 -hashes 50000
cp e2e/inside.sh deploy/image/build.sh "$work/e2e/"
cp -r e2e/host/before "$work/e2e/before"
echo "  $(ls "$work/e2e/db" | paste -sd' ' -): $(cat "$work"/e2e/db/* | wc -l) signatures, plus EICAR"

step "boot the host"
# A RAM cap for the whole host: inside it, systemd gets no memory controller of
# its own on this cgroup v1 machine, and the cap bounds every process in it.
podman run -d --name "$name" --hostname mail.rehearsal.test --runtime runc --systemd=always --privileged --stop-signal SIGRTMIN+3 \
  --memory 6g --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$image" /sbin/init >/dev/null
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
