#!/usr/bin/env bash
# Builds the Debian package, lints it (no error or warning), installs it on
# this machine, checks what it installed, then purges it and checks that
# nothing is left but what Debian policy keeps (the system users the package
# created), which this test then removes, since it created them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/package.sh
deb=$(ls -t dist/clamgate_*.deb | head -n 1)
version=$(dpkg-deb -f "$deb" Version)
if dpkg-query -W -f='${Status}' clamgate 2>/dev/null | grep -q 'ok installed'; then
  echo "test-package: clamgate is already installed here; not touching it" >&2
  exit 1
fi
# Users the package creates (clamgate, and any other clamgate* user) are
# kept by a purge, as Debian policy says; this test made them, so it
# removes those that were not there before it ran, failed or not.
users_before=$(getent passwd | cut -d: -f1)
remove_new_users() {
  local u
  for u in $(getent passwd | cut -d: -f1 | grep '^clamgate' || true); do
    grep -qx "$u" <<<"$users_before" && continue
    userdel "$u" >/dev/null 2>&1 || true
    if getent group "$u" >/dev/null; then groupdel "$u" >/dev/null 2>&1 || true; fi
  done
}
cleanup() { dpkg --purge clamgate >/dev/null 2>&1 || true; remove_new_users; }
trap cleanup EXIT
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

dpkg -i "$deb" >/dev/null
/usr/bin/clamgate version | grep -qx "package:  $version" || fail "clamgate version does not name package $version"
getent passwd clamgate >/dev/null || fail "postinst did not create the clamgate user"
for f in /lib/systemd/system/clamgate.service /lib/systemd/system/clamgate-engine.service /lib/systemd/system/clamgate.socket /etc/clamgate/clamgate.toml /usr/share/man/man8/clamgate.8.gz \
         /usr/share/man/man5/clamgate.toml.5.gz /usr/share/bash-completion/completions/clamgate \
         /usr/lib/sysusers.d/clamgate.conf /usr/lib/tmpfiles.d/clamgate.conf; do
  [[ -f $f ]] || fail "$f is not installed"
done
# The administrator's documentation, without the source tree.
doc=/usr/share/doc/clamgate
for f in README.md SECURITY.md LICENSE copyright docs/amavis.md docs/milter.md docs/squid.md docs/deploy.md docs/doctor.md; do
  [[ -s $doc/$f ]] || fail "$doc/$f is not installed"
done
grep -q 'Apache License' "$doc/LICENSE" || fail "$doc/LICENSE is not the Apache License"
grep -q '^License: Apache-2.0' "$doc/copyright" || fail "$doc/copyright does not name Apache-2.0"
/usr/bin/clamgate config check --offline --config /etc/clamgate/clamgate.toml >/dev/null \
  || fail "the packaged configuration does not load"
# The unit as systemd reads it (systemd is not PID 1 here: --man=no only
# skips resolving the man: Documentation links against the host's pages).
systemd-analyze verify --man=no /lib/systemd/system/clamgate.service /lib/systemd/system/clamgate-engine.service \
  /lib/systemd/system/clamgate.socket || fail "systemd-analyze verify clamgate.service clamgate-engine.service clamgate.socket"
getent passwd clamgate-engine >/dev/null || fail "postinst did not create the clamgate-engine user"
# The engine unit holds the reference hardening: systemd scores it as deploy's engine (doctor's bar: 1.0).
exposure=$(systemd-analyze security --offline=true /lib/systemd/system/clamgate-engine.service |
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.0) }' || fail "clamgate-engine.service scores $exposure (over 1.0)"
echo "test-package: installed $deb, units verified (engine exposure $exposure), configuration loads"

dpkg --purge clamgate >/dev/null
left=$(find /etc/clamgate /lib/systemd/system/clamgate.service /lib/systemd/system/clamgate-engine.service /lib/systemd/system/clamgate.socket /run/clamgate-engine /usr/bin/clamgate /usr/share/doc/clamgate \
  /usr/lib/sysusers.d/clamgate.conf /usr/lib/tmpfiles.d/clamgate.conf /run/clamgate 2>/dev/null || true)
[[ -z $left ]] || fail "left after purge: $left"
remove_new_users
echo "test-package: purged; the system users (clamgate, clamgate-engine) policy keeps removed (this test created them)"
