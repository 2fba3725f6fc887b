# Shared by e2e/rehearse.sh (deploy) and e2e/rehearse-package.sh (the Debian
# package's own path): the cached host image, the package, booting the host,
# the steps run inside it, the cleanup. Sourced from the tree's root.
#   E2E_CACHE=/var/cache/clamgate-e2e, E2E_KEEP=1 keeps the host on failure
cache=${E2E_CACHE:-/var/cache/clamgate-e2e}
name=clamgate-e2e-$$
work=$(mktemp -d /tmp/clamgate-e2e.XXXXXX)
started=$SECONDS

step() { printf '\n=== %s (%ds)\n' "$1" $((SECONDS - started)); }
# inside STEP...: a step of /root/e2e/$steps (inside.sh unless set) in the host.
inside() { podman exec "$name" bash "/root/e2e/${steps:-inside.sh}" "$@"; }

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

# host_image sets image: the root filesystem, with every package of
# e2e/host/packages installed, cached as a tarball keyed by that list and the
# recipe below and imported once as an image of the same key: a cold run
# downloads and installs (minutes), a warm run boots at once.
host_image() {
  local recipe='mmdebstrap --variant=minbase bookworm (+updates, security); postfix preseeded Local only'
  local key tarball
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
}

# build_package copies the package scripts/package.sh builds to $work/clamgate.deb:
# the host installs clamgate the way an administrator would (lintian runs in
# scripts/test-package.sh).
build_package() {
  bash scripts/package.sh --no-lint | sed 's/^/  /'
  cp "$(ls -t dist/clamgate_*.deb | head -n 1)" "$work/clamgate.deb"
}

# boot_host starts $image as $name with systemd as PID 1.
boot_host() {
  # A RAM cap for the whole host: inside it, systemd gets no memory controller of
  # its own on this cgroup v1 machine, and the cap bounds every process in it.
  podman run -d --name "$name" --hostname mail.rehearsal.test --runtime runc --systemd=always --privileged --stop-signal SIGRTMIN+3 \
    --memory 6g --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 "$image" /sbin/init >/dev/null
}

# requirements checks the tools and root.
requirements() {
  for tool in podman mmdebstrap go; do
    command -v "$tool" >/dev/null || { echo "rehearse: $tool is required (scripts/install-deps.sh --test)" >&2; exit 1; }
  done
  [[ $(id -u) == 0 ]] || { echo "rehearse: run as root (rootful podman)" >&2; exit 1; }
}
