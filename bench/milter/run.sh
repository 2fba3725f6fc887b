#!/usr/bin/env bash
# Benchmark mail scanning through clamgate's milter against clamav-milter,
# side by side, in one run against the same real clamd (test database: EICAR
# signatures only). Both milters get the same clean messages from the same
# MTA-playing driver (bench/milter/main.go); the report is ratios.
#
#   bash bench/milter/run.sh                           # 20 KiB mail, then a 5 MiB attachment
#   bash bench/milter/run.sh -size 20K -rounds 6 -concurrency 8   # extra args go to the driver
#
# Environment:
#   CLAMD=/usr/sbin/clamd  CLAMAV_MILTER=/usr/sbin/clamav-milter
#   BENCH_KEEP=1    keep the temp dir (configs, logs) for inspection
#   BENCH_DB=DIR    scan with this signature directory instead of the test database
#   GATEWAY_BIN=/path  use this clamgate binary instead of building one (e.g. a patched copy)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source bench/lib.sh
export PATH="$PATH:/usr/local/go/bin"

export CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
CLAMAV_MILTER=${CLAMAV_MILTER:-$(command -v clamav-milter || echo /usr/sbin/clamav-milter)}
for b in "$CLAMD" "$CLAMAV_MILTER"; do
	[[ -x $b ]] || { echo "run.sh: $b not found: run scripts/install-deps.sh --test" >&2; exit 2; }
done

# Short directory: unix socket paths must stay under 108 bytes.
dir=$(mktemp -d /tmp/cgmbench.XXXXXX)
chmod 755 "$dir"
pids=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	bench_stop "${pids[@]}"
	bench_leave "$dir" "$rc" gateway.log clamd.log clamav-milter.log
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_build_gateway "$dir"
go build -o "$dir/bin/milterbench" ./bench/milter

# The same actions on both sides, no headers, clamd reached by unix socket.
cat >"$dir/clamgate.toml" <<CONF
[backend]
address = "unix:$dir/clamd.sock"
stream_max_length = "100M"

[server]
log_level = "warn"

[[listener]]
address = "unix:$dir/gw.sock"
protocol = "milter"
policy = "mta"
mode = "0666"

[policy.mta]

[milter]
on_infected = "reject"
on_failure = "tempfail"
CONF

cat >"$dir/clamav-milter.conf" <<CONF
MilterSocket unix:$dir/clamav-milter.sock
MilterSocketMode 666
FixStaleSocket yes
Foreground yes
PidFile $dir/clamav-milter.pid
ClamdSocket unix:$dir/clamd.sock
OnClean Accept
OnInfected Reject
OnFail Defer
AddHeader No
MaxFileSize 100M
TemporaryDirectory $dir/tmp
LogFile $dir/clamav-milter.log
CONF

wait_socket() { # NAME PID PATH SECONDS
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		kill -0 "$2" 2>/dev/null || { echo "run.sh: $1 exited" >&2; return 1; }
		[[ -S $3 ]] && return 0
		sleep 0.1
	done
	echo "run.sh: $1 did not create $3 within $4 s" >&2
	return 1
}

bench_up "$dir" "unix:$dir/gw.sock" --config "$dir/clamgate.toml"
pids+=("$clamd_pid" "$gw_pid")

"$CLAMAV_MILTER" --config-file="$dir/clamav-milter.conf" >"$dir/clamav-milter.out" 2>&1 &
pids+=($!)
wait_socket clamav-milter "${pids[-1]}" "$dir/clamav-milter.sock" 30
echo "run.sh: $("$CLAMAV_MILTER" --version) up" >&2

cpu() { # PID: user+system CPU seconds so far
	awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat"
}

status=0
"$dir/bin/milterbench" -a "unix:$dir/gw.sock" -b "unix:$dir/clamav-milter.sock" \
	-clamd-pid "${pids[0]}" -a-pid "${pids[1]}" -b-pid "${pids[2]}" "$@" || status=$?
# CPU each side spent over the whole run (both got the same messages): what
# the milter takes away from clamd on a busy machine.
echo "CPU seconds over the run: clamd $(cpu "${pids[0]}"), clamgate $(cpu "${pids[1]}"), clamav-milter $(cpu "${pids[2]}")"
for i in "${!pids[@]}"; do
	kill -0 "${pids[$i]}" 2>/dev/null || { echo "run.sh: a daemon died during the run (pid ${pids[$i]})" >&2; status=1; }
done
exit "$status"
