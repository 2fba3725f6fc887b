#!/usr/bin/env bash
# Installs what clamgate needs on Debian 12: the ClamAV engine for running
# it, and with --test the real clients the test suite drives (no mocks).
set -euo pipefail

runtime=(clamav-daemon clamav-freshclam clamdscan)
testing=(clamav-testfiles python3-pyclamd libclamav-client-perl amavisd-new acl util-linux procps iproute2
         c-icap libc-icap-mod-virus-scan
         squid-openssl # squid with OpenSSL: presents its client certificate to an icaps:// service (replaces squid, GnuTLS)
         miltertest postfix swaks clamav-milter podman runc uidmap lintian
         catatonit     # podman kube play's pause container (the Helm chart's pod runs under it)
         mmdebstrap    # e2e/rehearse.sh builds the rehearsal host with it
         prometheus    # promtool: the alert rules and dashboard queries in monitoring/
         chromium curl # the HTTP front's status page rendered headless; curl as an API client
         etcd-server   # behind the kube-apiserver (scripts/kube-apiserver.sh) of the Lease tests
         systemd man-db python3) # systemd-analyze scores the units; man lints the pages; listen's peer

want=("${runtime[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${testing[@]}")
# The client matrix drives npm's clamd clients: Debian's Node.js where the
# machine has none of its own.
if [[ "${1:-}" == "--test" ]] && ! command -v npm >/dev/null; then want+=(nodejs npm); fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package services must not start: clamgate runs its own clamd.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  }
fi

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "install-deps: Go 1.26 or newer is required (https://go.dev/dl/); it is not on PATH" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
go mod download
# internal/chart runs Helm from the module and build caches alone (no
# network at test time): fetch and build it once here (minutes the first
# time; `go run` keeps the executable in the build cache).
if [[ "${1:-}" == "--test" ]]; then
  (cd / && go run helm.sh/helm/v4/cmd/helm@v4.3.2 version >/dev/null)
fi
