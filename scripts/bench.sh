#!/usr/bin/env bash
# The figures of docs/performance.md, in one run, side by side on this
# machine: INSTREAM through the gateway ÷ straight to clamd at each size
# (with an older build of the gateway as a third side, before/after), the
# campaign (one infected attachment sent again and again) through the
# gateway's verdict cache ÷ clamd alone, and the noisy-neighbour overload
# runs. One real clamd with bench/gensigs' synthetic database (1 M body and
# 2 M hash signatures) plus an EICAR signature; every object unique except
# the campaign's. Ratios only: absolute times on a shared machine mean
# little.
#
#   scripts/bench.sh                    # a few minutes: 3 rounds x 5 s per size, 1 overload run
#   scripts/bench.sh -long              # 6 rounds x 10 s, 5 overload runs of 30 s
#   scripts/bench.sh -old main          # the before side built from a git revision (default: none)
#   scripts/bench.sh -old-bin /path/clamgate
#   scripts/bench.sh -sizes 4K,1M -rounds 4 -duration 8s -overload 0 -no-campaign -no-http
#   scripts/bench.sh -db /var/lib/clamav  # real signatures instead of the synthetic set
#   scripts/bench.sh -mail-rate 0       # overload with mail back to back only (default: also 100 mails/s
#                                       # arriving at random, as at a server; bench/neighbour -mail-rate)
#
# Environment: CLAMD (clamd binary), BENCH_KEEP=1 (keep the run's directory).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=bench/lib.sh
source bench/lib.sh

sizes=4K,64K,1M rounds=3 duration=5s overload=1 overload_for=20s mail_rate=100 campaign=1 http=1 old= old_bin= db= concurrency=4
while (($#)); do
	case $1 in
	-long) rounds=6 duration=10s overload=5 overload_for=30s ;;
	-sizes) sizes=$2; shift ;;
	-rounds) rounds=$2; shift ;;
	-duration) duration=$2; shift ;;
	-concurrency) concurrency=$2; shift ;;
	-overload) overload=$2; shift ;;
	-overload-duration) overload_for=$2; shift ;;
	-mail-rate) mail_rate=$2; shift ;;
	-no-campaign) campaign=0 ;;
	-no-http) http=0 ;;
	-old) old=$2; shift ;;
	-old-bin) old_bin=$2; shift ;;
	-db) db=$2; shift ;;
	-h | -help | --help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (see -h)" >&2; exit 2 ;;
	esac
	shift
done

export CLAMD=${CLAMD:-$(command -v clamd || echo /usr/sbin/clamd)}
[[ -x $CLAMD ]] || { echo "bench.sh: clamd not found (apt-get install clamav-daemon, or set CLAMD)" >&2; exit 2; }

dir=$(mktemp -d /tmp/cgbench.XXXXXX)
chmod 755 "$dir"
clamd_pid= new_pid= old_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# shellcheck disable=SC2086 # unset pids are empty words, left out
	bench_stop $old_pid $new_pid $clamd_pid
	bench_leave "$dir" "$rc" gateway.log old.log clamd.log clamd.out
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "bench.sh: building into $dir/bin" >&2
mkdir -p "$dir/bin" "$dir/db"
go build -o "$dir/bin/clamgate" ./cmd/clamgate
for p in instream up gensigs httpfront; do go build -o "$dir/bin/$p" "./bench/$p"; done
if [[ -n $old ]]; then
	mkdir "$dir/old-src"
	git archive "$old" | tar -x -C "$dir/old-src"
	(cd "$dir/old-src" && go build -o "$dir/bin/clamgate-old" ./cmd/clamgate)
	old_bin=$dir/bin/clamgate-old
fi

# The database the gateway follows (so that its cache serves): our own
# directory, of links to -db's files or of the synthetic set.
if [[ -n $db ]]; then
	for f in "$db"/*; do ln -s "$(readlink -f "$f")" "$dir/db/"; done
else
	"$dir/bin/gensigs" -dir "$dir/db"
fi

# clamd reloads without a second engine (ConcurrentDatabaseReload no), so
# that the gateway knows when a reload is done; IdleTimeout short, so that
# its reload does not wait for idle threads.
out=$("$dir/bin/up" -dir "$dir" -db "$dir/db" -clamd-conf "ConcurrentDatabaseReload no" -clamd-conf "IdleTimeout 2") || exit 1
eval "$out"
echo "bench.sh: $clamd_version up (pid $clamd_pid)" >&2

# The fronts compared over loopback TCP: two free ports.
read -r clamd_port http_port < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
cat >"$dir/gateway.toml" <<EOF
[backend]
address = "unix:$dir/clamd.sock"
timeout = "2m"
[database]
dir = "$dir/db"
reload = "frugal"
settle = "500ms"
[server]
log_level = "info"
audit = false
[[listener]]
address = "unix:$dir/gw.sock"
policy = "bench"
mode = "0666"
[[listener]]
address = "tcp:127.0.0.1:$clamd_port"
policy = "bench"
[[listener]]
address = "tcp:127.0.0.1:$http_port"
protocol = "http"
policy = "bench"
[policy.bench]
EOF
"$dir/bin/clamgate" serve --config "$dir/gateway.toml" >"$dir/gateway.log" 2>&1 &
new_pid=$!
third=()
if [[ -n $old_bin ]]; then
	"$old_bin" serve --backend "unix:$dir/clamd.sock" --listen "unix:$dir/old.sock" --log-level warn >"$dir/old.log" 2>&1 &
	old_pid=$!
	third=(-floor "unix:$dir/old.sock")
fi
for s in gw old; do
	[[ $s == old && -z $old_pid ]] && continue
	"$dir/bin/instream" -ping "unix:$dir/$s.sock" -wait 60s
done

# The EICAR signature arrives as a database update: the gateway reloads
# clamd, and from then on knows what clamd runs, so its cache serves.
printf 'Clamgate-Bench-Eicar:0:*:%s\n' "$(printf '%s' "$BENCH_EICAR" | od -An -tx1 | tr -d ' \n')" >"$dir/db/bench-eicar.ndb"
for _ in $(seq 300); do
	grep -q 'signature database (reload)' "$dir/gateway.log" && break
	sleep 1
done
grep -q 'signature database (reload)' "$dir/gateway.log" || { echo "bench.sh: the gateway did not reload clamd" >&2; exit 1; }

bench() {
	"$dir/bin/instream" -direct "unix:$dir/clamd.sock" -gateway "unix:$dir/gw.sock" -concurrency "$concurrency" \
		-rounds "$rounds" -duration "$duration" "$@"
}
results=$dir/results.txt
echo "== gateway ÷ direct clamd (unique objects)${old_bin:+; floor = the before build}"
bench -size "$sizes" "${third[@]}" | tee -a "$results"
if [[ $campaign == 1 ]]; then
	echo "== campaign: one infected 1 MiB object again and again (gateway: verdict cache)"
	bench -size 1M -unique=false -infected | tee "$dir/campaign.txt"
fi
if [[ $http == 1 ]]; then
	echo "== HTTP front ÷ clamd-protocol front (POST /v1/scan on keep-alive connections ÷ INSTREAM, a connection per scan)"
	"$dir/bin/httpfront" -clamd "tcp:127.0.0.1:$clamd_port" -http "127.0.0.1:$http_port" -sizes 4096,1048576 \
		-c "$concurrency" -rounds "$rounds" -round "$duration" | tee "$dir/httpfront.txt"
fi
# The overload runs start their own clamd and gateway (bench/neighbour).
# With the 3 M-signature set a 20 KiB mail takes ~0.5 s on 2 busy cores and
# a 1 MiB stream longer than a run: a 30 000-signature set, unless -db.
overload_db=$db
if [[ -z $db && $overload -gt 0 ]]; then
	overload_db=$dir/small-db
	mkdir -p "$overload_db"
	"$dir/bin/gensigs" -dir "$overload_db" -body 30000 -hashes 100
fi
for ((i = 1; i <= overload; i++)); do
	echo "== overload run $i of $overload: mail 20 KiB (2 clients back to back) beside 16 processes x 1 MiB"
	go run ./bench/neighbour -db "$overload_db" -flood 16 -flood-size 1M -duration "$overload_for" -rounds 4 | tee "$dir/overload$i.txt"
	[[ $mail_rate == 0 ]] && continue
	echo "== overload run $i of $overload: mail 20 KiB ($mail_rate a second at random) beside 16 processes x 1 MiB"
	go run ./bench/neighbour -db "$overload_db" -flood 16 -flood-size 1M -duration "$overload_for" -rounds 4 -mail-rate "$mail_rate" | tee "$dir/overload$i-rate.txt"
done

echo
echo "== summary (ratios of sides measured in the same rounds)"
summary() {
	awk -v label="$1" '/^RESULT/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		line = sprintf("%s %8s bytes: gateway/direct %s (gateway p99 %s ms, direct %s ms)", label, v["size"], v["ratio"], v["gateway_p99_ms"], v["direct_p99_ms"])
		if (v["floor_ratio"] != "") line = line sprintf("; before/direct %s, after/before %s", v["floor_ratio"], v["gateway_floor_ratio"])
		print line
		delete v
	}' "$2"
}
summary "unique" "$results"
[[ $campaign == 1 ]] && summary "campaign" "$dir/campaign.txt"
if [[ $http == 1 ]]; then
	awk '/^[0-9]+ +(clamd|http) / { tput[$1 " " $2] = $3; p99[$1 " " $2] = $5 }
	/^RESULT/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		s = v["size"]
		printf "http front %8s bytes: http/clamd-protocol throughput %s, p99 %s (scans/s %s vs %s; p99 %s vs %s ms)\n", s, v["throughput"], v["p99"], tput[s " http"], tput[s " clamd"], p99[s " http"], p99[s " clamd"]
		delete v
	}' "$dir/httpfront.txt"
fi
for ((i = 1; i <= overload; i++)); do
	for f in "$dir/overload$i.txt" "$dir/overload$i-rate.txt"; do
		[[ -f $f ]] || continue
		mode="2 mail clients back to back"
		[[ $f == *-rate.txt ]] && mode="$mail_rate mails/s at random"
		printf 'overload run %d (%s): %s; %s; %s\n' "$i" "$mode" \
			"$(grep -o 'mail p99 under flood / alone: [0-9.]*x' "$f")" \
			"$(grep -o 'flood beside mail / alone: *[0-9]*%' "$f" | tr -s ' ')" \
			"$(grep -o 'mail errors: *[0-9]*' "$f" | tr -s ' ')"
	done
done
