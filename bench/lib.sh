# Shared by the benchmark scripts (sourced): the gateway under test and a
# real clamd with the test database, started the same way for every run
# (bench/up, that is bench/benchenv, which the Go benchmarks use too), and
# torn down the same way.

# BENCH_EICAR is the EICAR test string, as internal/testenv.EICAR.
BENCH_EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'

# bench_build_gateway DIR: the gateway binary into DIR/bin/clamgate, either
# GATEWAY_BIN (a prebuilt, e.g. patched, copy) or built from the tree.
bench_build_gateway() {
	local dir=$1
	echo "run.sh: building into $dir/bin" >&2
	mkdir -p "$dir/bin"
	if [[ -n ${GATEWAY_BIN:-} ]]; then
		cp "$GATEWAY_BIN" "$dir/bin/clamgate"
	else
		go build -o "$dir/bin/clamgate" ./cmd/clamgate
	fi
	go build -o "$dir/bin/up" ./bench/up
}

# bench_up DIR READY [SERVE ARGUMENTS...]: clamd in DIR (DIR/clamd.sock,
# the test database or BENCH_DB) and the gateway (DIR/bin/clamgate serve
# with the arguments, GATEWAY_ENV in its environment), each waited for: clamd
# until it answers PING, the gateway until every address of READY (a
# space-separated list of unix:/path or tcp:host:port) accepts connections.
# Sets clamd_pid, gw_pid, dbdir and clamd_version.
bench_up() {
	local dir=$1 ready=$2 a out
	shift 2
	local opts=(-dir "$dir" -gateway "$dir/bin/clamgate")
	[[ -n ${BENCH_DB:-} ]] && opts+=(-db "$BENCH_DB")
	for a in ${GATEWAY_ENV:-}; do opts+=(-env "$a"); done
	for a in $ready; do opts+=(-ready "$a"); done
	out=$("$dir/bin/up" "${opts[@]}" -- "$@") || return 1
	eval "$out"
	echo "run.sh: $clamd_version up (pid $clamd_pid, database $dbdir)" >&2
	echo "run.sh: gateway up (pid $gw_pid${GATEWAY_ENV:+, env $GATEWAY_ENV})" >&2
}


# bench_stop PID...: each live process in turn gets TERM, KILL 5 s later if
# it is still there, and is reaped.
bench_stop() {
	local pid
	for pid; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
}

# bench_leave DIR RC LOG...: after a failure (an interrupt is none), the last
# lines of each LOG in DIR; then DIR is removed, or kept with BENCH_KEEP=1.
bench_leave() {
	local dir=$1 rc=$2 f
	shift 2
	if [[ $rc -ne 0 && $rc -ne 130 && $rc -ne 143 ]]; then
		for f; do
			[[ -s $dir/$f ]] && { echo "--- $f (last lines)" >&2; tail -n 20 "$dir/$f" >&2; }
		done
	fi
	if [[ ${BENCH_KEEP:-} == 1 ]]; then echo "run.sh: kept $dir" >&2; else rm -rf "$dir"; fi
}
