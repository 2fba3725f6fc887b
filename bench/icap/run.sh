#!/usr/bin/env bash
# Benchmark ICAP RESPMOD through clamgate's ICAP service against c-icap +
# virus_scan (clamd_mod), side by side, in one run against the same real clamd
# (test database: EICAR signatures only). Both servers get the same squid-like
# requests from the same driver (bench/icap/load); the report is ratios.
#
#   bash bench/icap/run.sh                  # 4 KiB (c=8), 10 MiB (c=4), 10 MiB without Allow: 204 (c=4)
#   bash bench/icap/run.sh -rounds 5        # extra args go to every bench/icap/load run
#
# Environment:
#   CLAMD=/usr/sbin/clamd  CICAP=/usr/bin/c-icap  CICAP_CLIENT=/usr/bin/c-icap-client
#   BENCH_KEEP=1       keep the temp dir (configs, logs) for inspection
#   BENCH_DB=DIR       scan with this signature directory instead of the test database
#   BENCH_CASES="..."  cases to run, default "small large large-no204"
#   BENCH_ROUNDS=4     rounds per case (order ABBA); BENCH_DURATION_SMALL=8s BENCH_DURATION_LARGE=10s
#   BENCH_C_SMALL=8 BENCH_C_LARGE=4   concurrency
#   GATEWAY_BIN=/path  use this clamgate binary instead of building one (e.g. a patched copy)
#   GATEWAY_ENV="GOGC=400"  environment for the gateway only (runtime knobs)
#   GATEWAY_ARGS="..." extra arguments for `clamgate serve`
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source bench/lib.sh
export PATH="$PATH:/usr/local/go/bin"

export CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
CICAP=${CICAP:-$(command -v c-icap || echo /usr/bin/c-icap)}
CICAP_CLIENT=${CICAP_CLIENT:-$(command -v c-icap-client || echo /usr/bin/c-icap-client)}
CICAP_LIB=${CICAP_LIB:-/usr/lib/x86_64-linux-gnu/c_icap}
for b in "$CLAMD" "$CICAP" "$CICAP_CLIENT"; do
	[[ -x $b ]] || { echo "run.sh: $b not found (apt-get install clamav-daemon c-icap libc-icap-mod-virus-scan)" >&2; exit 2; }
done
[[ -f $CICAP_LIB/virus_scan.so && -f $CICAP_LIB/clamd_mod.so ]] ||
	{ echo "run.sh: virus_scan.so/clamd_mod.so not in $CICAP_LIB (libc-icap-mod-virus-scan)" >&2; exit 2; }

# Short directory: unix socket paths must stay under 108 bytes.
dir=$(mktemp -d /tmp/cgibench.XXXXXX)
chmod 755 "$dir"
clamd_pid= gw_pid= ci_pid= bench_pid= ci_kids=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n $ci_pid ]] && ci_kids=$(ps -o pid= --ppid "$ci_pid" 2>/dev/null || true)
	# shellcheck disable=SC2086 # unset pids are empty words, left out
	bench_stop $bench_pid $ci_pid $gw_pid $clamd_pid
	# c-icap's children, should any have outlived their parent.
	for pid in $ci_kids; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	bench_leave "$dir" "$rc" gateway.log clamd.log c-icap.out server.log
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bench_build_gateway "$dir"
go build -o "$dir/bin/load" ./bench/icap/load
load=$dir/bin/load

mkdir -p "$dir/ci"

# alive NAME PID: fail if the process has gone.
alive() { kill -0 "$2" 2>/dev/null || { echo "run.sh: $1 (pid $2) is not running" >&2; return 1; }; }

gw_port=$("$load" -freeport)
# shellcheck disable=SC2086 # GATEWAY_ARGS are words
bench_up "$dir" "tcp:127.0.0.1:$gw_port" --backend "unix:$dir/clamd.sock" --icap "tcp:127.0.0.1:$gw_port" \
	--log-level warn ${GATEWAY_ARGS:-}
echo "run.sh: the gateway listens on 127.0.0.1:$gw_port" >&2

ci_port=$("$load" -freeport)
while [[ $ci_port == "$gw_port" ]]; do ci_port=$("$load" -freeport); done
cat >"$dir/c-icap.conf" <<EOF
PidFile $dir/c-icap.pid
CommandsSocket $dir/c-icap.ctl
Timeout 300
StartServers 1
MaxServers 4
MinSpareThreads 10
MaxSpareThreads 20
ThreadsPerChild 10
Port 127.0.0.1:$ci_port
TmpDir $dir/ci
MaxMemObject 131072
DebugLevel 0
ModulesDir $CICAP_LIB
ServicesDir $CICAP_LIB
TemplateDir /usr/share/c_icap/templates/
TemplateDefaultLanguage en
LoadMagicFile /etc/c-icap/c-icap.magic
ServerLog $dir/server.log
AccessLog $dir/access.log
Module common clamd_mod.so
clamd_mod.ClamdSocket $dir/clamd.sock
Service antivirus_module virus_scan.so
ServiceAlias avscan virus_scan?allow204=on&sizelimit=off&mode=simple
virus_scan.ScanFileTypes TEXT DATA EXECUTABLE ARCHIVE GIF JPEG MSOFFICE
virus_scan.SendPercentData 5
virus_scan.StartSendPercentDataAfter 2M
virus_scan.MaxObjectSize 100M
virus_scan.DefaultEngine clamd
EOF
"$CICAP" -f "$dir/c-icap.conf" -N -D -d 0 >"$dir/c-icap.out" 2>&1 &
ci_pid=$!
"$load" -wait "127.0.0.1:$ci_port" -timeout 30s
alive c-icap "$ci_pid"
echo "run.sh: $("$CICAP" -V 2>&1 | head -n1 | sed 's/^/c-icap /') up on 127.0.0.1:$ci_port (pid $ci_pid)" >&2

# Sanity: both really scan. EICAR through c-icap-client (an independent
# client) must come back infected; the driver then checks a 10 MiB body with
# EICAR at its very end (so the whole body reached clamd) and clean bodies.
printf '%s' "$BENCH_EICAR" >"$dir/eicar.com"
for s in "gateway:$gw_port" "c-icap:$ci_port"; do
	name=${s%%:*} port=${s##*:}
	out=$("$CICAP_CLIENT" -i 127.0.0.1 -p "$port" -s avscan -f "$dir/eicar.com" -resp http://bench.example/eicar.com -v 2>&1 | tr -d '\0' || true)
	if ! grep -q 'X-Infection-Found' <<<"$out"; then
		echo "run.sh: c-icap-client: $name did not report EICAR:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "run.sh: c-icap-client: $name: $(grep -m1 'X-Infection-Found' <<<"$out" | tr -d '\r' | sed 's/^[[:space:]]*//')" >&2
done
sides=(-side "gateway=127.0.0.1:$gw_port" -side "c-icap=127.0.0.1:$ci_port")
"$load" -check "${sides[@]}" -size 4096
"$load" -check "${sides[@]}" -size $((10 << 20)) -no204

# How c-icap reaches clamd: clamd_mod passes the spooled file's descriptor
# (zFILDES) over the unix socket. The gateway does too with a local clamd
# (a memfd, or its own spool file for a large body).
if command -v strace >/dev/null && [[ ${BENCH_STRACE:-1} == 1 ]]; then
	st_args=()
	for pid in $ci_pid $(ps -o pid= --ppid "$ci_pid"); do st_args+=(-p "$pid"); done
	strace -f -qq -e trace=sendmsg,sendto,write -e signal=none -s 16 -o "$dir/ci.strace" "${st_args[@]}" &
	st_pid=$!
	sleep 0.5
	"$load" -check -side "c-icap=127.0.0.1:$ci_port" -size 4096 >/dev/null || true
	sleep 0.2
	kill "$st_pid" 2>/dev/null || true
	wait "$st_pid" 2>/dev/null || true
	cmds=$(grep -oE 'z(FILDES|INSTREAM|SCAN)' "$dir/ci.strace" | sort | uniq -c | tr -s ' \n' ' ' || true)
	echo "run.sh: c-icap -> clamd commands seen with strace:${cmds:- none}" >&2
fi

watch=(-watch "gateway=$gw_pid" -watch "c-icap=$ci_pid" -watch "clamd=$clamd_pid")
rounds=${BENCH_ROUNDS:-4}

# The driver runs in the background and is waited for, so that a signal to
# this script is handled at once.
bench() {
	"$load" "${sides[@]}" "${watch[@]}" -rounds "$rounds" -order abba "$@" > >(tee -a "$dir/results.txt") &
	bench_pid=$!
	local rc=0
	wait "$bench_pid" || rc=$?
	bench_pid=
	return "$rc"
}

status=0
for c in ${BENCH_CASES:-small large large-no204}; do
	case $c in
	small) bench -size 4096 -concurrency "${BENCH_C_SMALL:-8}" -duration "${BENCH_DURATION_SMALL:-8s}" "$@" || status=$? ;;
	large) bench -size $((10 << 20)) -concurrency "${BENCH_C_LARGE:-4}" -duration "${BENCH_DURATION_LARGE:-10s}" "$@" || status=$? ;;
	large-no204) bench -size $((10 << 20)) -no204 -concurrency "${BENCH_C_LARGE:-4}" -duration "${BENCH_DURATION_LARGE:-10s}" "$@" || status=$? ;;
	*) echo "run.sh: unknown case $c" >&2; status=2 ;;
	esac
	echo
done

# Summary table from the RESULT lines.
get() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
echo "| case | c | gateway resp/s | c-icap resp/s | ratio (>= 1.5) | per-round | gateway p50 / p99 ms | c-icap p50 / p99 ms | p99 gw/ci | gateway CPU/resp | c-icap CPU/resp | clamd CPU/resp (gw / ci) | driver CPU/resp (gw / ci) | other load, CPUs (gw / ci) | target |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
grep '^RESULT ' "$dir/results.txt" | while read -r line; do
	printf '| %s | %s | %s | %s | %s | %s..%s | %s / %s | %s / %s | %s | %s µs | %s µs | %s / %s µs | %s / %s µs | %s / %s | %s |\n' \
		"$(get "$line" label)" "$(get "$line" concurrency)" \
		"$(get "$line" gateway_rps)" "$(get "$line" cicap_rps)" "$(get "$line" ratio)" \
		"$(get "$line" ratio_min)" "$(get "$line" ratio_max)" \
		"$(get "$line" gateway_p50_ms)" "$(get "$line" gateway_p99_ms)" \
		"$(get "$line" cicap_p50_ms)" "$(get "$line" cicap_p99_ms)" "$(get "$line" p99_ratio)" \
		"$(get "$line" gateway_cpu_gateway_us)" "$(get "$line" cicap_cpu_cicap_us)" \
		"$(get "$line" gateway_cpu_clamd_us)" "$(get "$line" cicap_cpu_clamd_us)" \
		"$(get "$line" gateway_cpu_driver_us)" "$(get "$line" cicap_cpu_driver_us)" \
		"$(get "$line" gateway_other_cpus)" "$(get "$line" cicap_other_cpus)" "$(get "$line" target)"
done

if [[ -s $dir/gateway.log ]]; then
	echo "--- gateway log (warnings and errors, last lines)" >&2
	tail -n 20 "$dir/gateway.log" >&2
fi
alive gateway "$gw_pid" || status=1
alive c-icap "$ci_pid" || status=1
alive clamd "$clamd_pid" || status=1
exit "$status"
