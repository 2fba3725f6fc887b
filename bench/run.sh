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
#   GATEWAY_ENV="GOGC=400"  environment for the gateway only (runtime knobs)
#   BENCH_FLOOR=0           skip the third side, a bare byte-copying proxy
#                           (bench/instream -proxy) in front of the same clamd
#   BENCH_DB=/var/lib/clamav  scan with this signature directory instead of the
#                           two-signature test database (realistic clamd cost)
#
# Without -size in the arguments, two runs are made: -size 4096 (per-scan
# overhead) and -size 1048576 (streaming overhead), with the same other args.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source bench/lib.sh

export CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
[[ -x $CLAMD ]] || { echo "run.sh: clamd not found (set CLAMD=...)" >&2; exit 2; }

# Short directory: unix socket paths must stay under 108 bytes.
dir=$(mktemp -d /tmp/cgbench.XXXXXX)
chmod 755 "$dir"
clamd_pid= gw_pid= floor_pid= bench_pid=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# shellcheck disable=SC2086 # unset pids are empty words, left out
	bench_stop $bench_pid $floor_pid $gw_pid $clamd_pid
	bench_leave "$dir" "$rc" gateway.log clamd.log clamd.out
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_build_gateway "$dir"
go build -o "$dir/bin/instream" ./bench/instream

# wait_ready NAME PID ADDR SECONDS: until ADDR answers PING, failing early
# if the process died.
wait_ready() {
	local name=$1 pid=$2 addr=$3 secs=$4 i
	for ((i = 0; i < secs; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "run.sh: $name exited before answering PING" >&2
			return 1
		fi
		"$dir/bin/instream" -ping "$addr" -wait 1s 2>/dev/null && return 0
	done
	echo "run.sh: $name did not answer PING on $addr within ${secs}s" >&2
	return 1
}

# shellcheck disable=SC2086 # GATEWAY_ARGS are words
bench_up "$dir" "unix:$dir/gw.sock" --backend "unix:$dir/clamd.sock" --listen "unix:$dir/gw.sock" \
	--log-level warn ${GATEWAY_ARGS:-}

floor=()
if [[ ${BENCH_FLOOR:-1} != 0 ]]; then
	"$dir/bin/instream" -proxy "unix:$dir/floor.sock" -backend "unix:$dir/clamd.sock" >"$dir/floor.log" 2>&1 &
	floor_pid=$!
	wait_ready "bare proxy" "$floor_pid" "unix:$dir/floor.sock" 30
	floor=(-floor "unix:$dir/floor.sock")
fi

# The bench runs in the background and is waited for, so that a signal to
# this script is handled at once rather than after the bench has finished.
bench() {
	"$dir/bin/instream" -direct "unix:$dir/clamd.sock" -gateway "unix:$dir/gw.sock" "${floor[@]}" "$@" &
	bench_pid=$!
	local rc=0
	wait "$bench_pid" || rc=$?
	bench_pid=
	return "$rc"
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
