#!/usr/bin/env bash
# The figures of docs/scaling.md, measured on this machine: the memory of
# one pod (clamd and gateway RSS) for bench/gensigs' synthetic databases,
# steady and at the peak of a concurrent and a frugal reload (bench/reload,
# side by side); then one pod's throughput for mail-sized and download-sized
# objects through the clamd-protocol and HTTP fronts (bench/httpfront,
# rounds alternating), counted per CPU-second that clamd and the gateway
# spent, which is the pod's throughput per core however busy the machine
# is. Every object is unique. It prints the load average beside the
# figures; it is a measuring program, not a pass/fail test.
#
#   scripts/scaling.sh                            # 30k,1M,3M memory; 3M throughput, 50 KiB and 5 MiB
#   scripts/scaling.sh -sets 30k -throughput-set 30k -rounds 2 -round 4s   # quick
#
# Environment: CLAMD (clamd binary), BENCH_KEEP=1 (keep the run's directory).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source bench/lib.sh

sets=30k,1M,3M tset=3M sizes=51200,5242880 rounds=2 round=8s conc=2
while (($#)); do
	case $1 in
	-sets) sets=$2; shift ;;
	-throughput-set) tset=$2; shift ;;
	-sizes) sizes=$2; shift ;;
	-rounds) rounds=$2; shift ;;
	-round) round=$2; shift ;;
	-c) conc=$2; shift ;;
	-h | -help | --help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "scaling.sh: unknown argument $1 (see -h)" >&2; exit 2 ;;
	esac
	shift
done

export CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
[[ -x $CLAMD ]] || { echo "scaling.sh: clamd not found (apt-get install clamav-daemon, or set CLAMD)" >&2; exit 2; }

dir=$(mktemp -d /tmp/cgscale.XXXXXX)
chmod 755 "$dir"
clamd_pid= gw_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# shellcheck disable=SC2086 # unset pids are empty words, left out
	bench_stop $gw_pid $clamd_pid
	bench_leave "$dir" "$rc" gateway.log clamd.log clamd.out
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "scaling.sh: building into $dir/bin" >&2
mkdir -p "$dir/bin"
go build -o "$dir/bin/clamgate" ./cmd/clamgate
for p in up gensigs httpfront reload; do go build -o "$dir/bin/$p" "./bench/$p"; done

# gendb NAME: the synthetic set of that many signatures, one third body
# patterns and two thirds hashes, as gensigs' default 3 M set.
gendb() {
	local n
	case $1 in
	30k) n=30000 ;; 1M) n=1000000 ;; 3M) n=3000000 ;;
	*) echo "scaling.sh: unknown set $1 (30k, 1M, 3M)" >&2; exit 2 ;;
	esac
	[[ -d $dir/db-$1 ]] || { mkdir -p "$dir/db-$1" && "$dir/bin/gensigs" -dir "$dir/db-$1" -body $((n / 3)) -hashes $((n - n / 3)) >/dev/null; }
	echo "$dir/db-$1"
}

echo "== memory of one pod: clamd steady and reload peak (MiB), 2 clients scanning; $(uptime)"
IFS=, read -ra setlist <<<"$sets"
for s in "${setlist[@]}"; do
	echo "-- $s signatures"
	"$dir/bin/reload" -db "$(gendb "$s")" -workers 2
done

echo "== throughput of one pod, $tset signatures, $conc clients per front; $(uptime)"
db=$(gendb "$tset")
out=$("$dir/bin/up" -dir "$dir" -db "$db" -clamd-conf "StreamMaxLength 20M" -clamd-conf "MaxThreads 4") || exit 1
eval "$out"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/gateway.toml" <<EOF
[backend]
address = "unix:$dir/clamd.sock"
timeout = "5m"
[server]
audit = false
[[listener]]
address = "unix:$dir/gw.sock"
policy = "bench"
mode = "0666"
[[listener]]
address = "tcp:127.0.0.1:$port"
protocol = "http"
policy = "bench"
[policy.bench]
max_object = "10M"
max_wait = "5m"
EOF
"$dir/bin/clamgate" serve --config "$dir/gateway.toml" >"$dir/gateway.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do
	[[ -S $dir/gw.sock ]] && break
	sleep 0.1
done
"$dir/bin/httpfront" -clamd "unix:$dir/gw.sock" -http "127.0.0.1:$port" -sizes "$sizes" -c "$conc" \
	-rounds "$rounds" -round "$round" -cpu-pids "$gw_pid,$clamd_pid"
printf 'RSS after the runs: clamd %s MiB, gateway %s MiB; %s\n' \
	"$(($(awk '/VmRSS/ {print $2}' /proc/"$clamd_pid"/status) / 1024))" \
	"$(($(awk '/VmRSS/ {print $2}' /proc/"$gw_pid"/status) / 1024))" "$(uptime)"
