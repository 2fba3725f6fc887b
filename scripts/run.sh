#!/usr/bin/env bash
# Installs what is missing, builds clamgate and runs the gateway with its
# own managed clamd (the host's /var/lib/clamav database when freshclam has
# filled it, otherwise, said so, the built-in EICAR-only test database).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
go build -o bin/clamgate ./cmd/clamgate

# clamd runs as a user of its own, shared with no other daemon.
if [ "$(id -u)" = 0 ] && ! getent passwd clamgate-engine >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		--comment "clamgate managed clamd" clamgate-engine
	echo "Created the system user clamgate-engine, which the managed clamd runs as."
fi

database=()
if ! ls /var/lib/clamav 2>/dev/null | grep -qE '\.(cvd|cld|cud|hdb|hsb|ndb|ldb|mdb|msb|cdb|yar|yara)$'; then
	database=(--database test)
	echo "No signatures in /var/lib/clamav: using clamgate's built-in EICAR-only TEST database (--database test)."
	echo "For real protection run freshclam (package clamav-freshclam) and start again."
fi

sock=/run/clamgate/clamd.sock
cat <<MSG

clamgate is starting: clamd protocol on unix:$sock and tcp:127.0.0.1:3310,
ICAP (service avscan) on tcp:127.0.0.1:1344, metrics and health on http://127.0.0.1:9310.
Its clamd runs sandboxed by clamgate: user clamgate-engine, no capabilities, no network, Landlock, seccomp.
In another terminal, scan the EICAR test string (exit code 1 = infected):

  printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}\$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!\$H+H*' > /tmp/eicar.com
  bin/clamgate scan --address unix:$sock /tmp/eicar.com
  echo 'LocalSocket $sock' > /tmp/clamgate-clamd.conf && clamdscan --config-file=/tmp/clamgate-clamd.conf /tmp/eicar.com
  curl -s http://127.0.0.1:9310/metrics | grep clamgate_scans_total
  bin/clamgate doctor

Stop with Ctrl-C.

MSG
exec bin/clamgate serve --listen "unix:$sock" --listen tcp:127.0.0.1:3310 --allow-root /tmp \
  --icap tcp:127.0.0.1:1344 --http tcp:127.0.0.1:9310 "${database[@]}" "$@"
