#!/usr/bin/env bash
# Benchmark INSTREAM through the gateway against clamd directly, side by side,
# against one real clamd with the test database (EICAR signatures only).
#
#   bash bench/run.sh                       # 4 KiB objects, then 1 MiB objects
#   bash bench/run.sh -size 4096 -rounds 5  # extra args go to bench/instream
#
# Environment:
#   CLAMD=/usr/sbin/clamd   clamd binary
#   BENCH_KEEP=1            keep the temp dir (logs, sockets) for inspection
#   GATEWAY_BIN=/path       use this clamgate binary instead of building one
#                           (e.g. a profiling build of a copy of the tree)
#   GATEWAY_ARGS="..."      extra arguments for `clamgate serve`
#
# Without -size in the arguments, two runs are made: -size 4096 (per-scan
# overhead) and -size 1048576 with -duration 5s (streaming overhead).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
[[ -x $CLAMD ]] || { echo "run.sh: clamd not found (set CLAMD=...)" >&2; exit 2; }

# Short directory: unix socket paths must stay under 108 bytes.
dir=$(mktemp -d /tmp/cgbench.XXXXXX)
chmod 755 "$dir"
clamd_pid= gw_pid=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in $gw_pid $clamd_pid; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	if [[ $rc -ne 0 ]]; then
		for f in gateway.log clamd.log clamd.out; do
			[[ -s $dir/$f ]] && { echo "--- $f (last lines)" >&2; tail -n 20 "$dir/$f" >&2; }
		done
	fi
	if [[ ${BENCH_KEEP:-} == 1 ]]; then
		echo "run.sh: kept $dir" >&2
	else
		rm -rf "$dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run.sh: building into $dir/bin" >&2
mkdir -p "$dir/bin"
if [[ -n ${GATEWAY_BIN:-} ]]; then
	cp "$GATEWAY_BIN" "$dir/bin/clamgate"
else
	go build -o "$dir/bin/clamgate" ./cmd/clamgate
fi
go build -o "$dir/bin/instream" ./bench/instream

# Test database, as internal/testenv.WriteTestDB writes it.
mkdir -p "$dir/db" "$dir/tmp"
eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
marker='CLAMGATE-SECOND-MARK'
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
printf 'Eicar-Test-Signature:0:*:%s\nClamgate-Test-Marker:0:*:%s\n' "$(hex "$eicar")" "$(hex "$marker")" >"$dir/db/test.ndb"
printf 'aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n' >"$dir/db/test.hdb"

cat >"$dir/clamd.conf" <<EOF
Foreground yes
LocalSocket $dir/clamd.sock
LocalSocketMode 666
DatabaseDirectory $dir/db
TemporaryDirectory $dir/tmp
LogFile $dir/clamd.log
PidFile $dir/clamd.pid
StreamMaxLength 100M
MaxThreads 10
EOF

"$CLAMD" --config-file="$dir/clamd.conf" >"$dir/clamd.out" 2>&1 &
clamd_pid=$!
"$dir/bin/instream" -ping "unix:$dir/clamd.sock" -wait 120s
echo "run.sh: clamd $("$CLAMD" --version) up (pid $clamd_pid)" >&2

# shellcheck disable=SC2086 # GATEWAY_ARGS is a word list on purpose
"$dir/bin/clamgate" serve --backend "unix:$dir/clamd.sock" --listen "unix:$dir/gw.sock" \
	--log-level warn ${GATEWAY_ARGS:-} >"$dir/gateway.log" 2>&1 &
gw_pid=$!
"$dir/bin/instream" -ping "unix:$dir/gw.sock" -wait 30s
echo "run.sh: gateway up (pid $gw_pid)" >&2

bench() {
	"$dir/bin/instream" -direct "unix:$dir/clamd.sock" -gateway "unix:$dir/gw.sock" "$@"
}

has_size=0
for a in "$@"; do
	case $a in -size | -size=* | --size | --size=*) has_size=1 ;; esac
done
status=0
if [[ $has_size == 1 ]]; then
	bench "$@" || status=$?
else
	bench -size 4096 "$@" || status=$?
	bench -size 1048576 "$@" || status=$?
fi

if [[ -s $dir/gateway.log ]]; then
	echo "--- gateway log (warnings and errors, last lines)" >&2
	tail -n 20 "$dir/gateway.log" >&2
fi
kill -0 "$gw_pid" 2>/dev/null || { echo "run.sh: the gateway died during the run" >&2; status=1; }
kill -0 "$clamd_pid" 2>/dev/null || { echo "run.sh: clamd died during the run" >&2; status=1; }
exit "$status"
