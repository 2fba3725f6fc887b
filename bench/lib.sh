# Shared by the benchmark scripts (sourced): the gateway under test and a
# real clamd with the test database, set up the same way for every run, and
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
}

# bench_clamd_conf DIR: the test database (as internal/testenv.WriteTestDB
# writes it) or BENCH_DB, and DIR/clamd.conf using it; sets dbdir.
bench_clamd_conf() {
	local dir=$1 marker
	mkdir -p "$dir/db" "$dir/tmp"
	marker='CLAMGATE-SECOND-MARK'
	printf 'Eicar-Test-Signature:0:*:%s\nClamgate-Test-Marker:0:*:%s\n' "$(bench_hex "$BENCH_EICAR")" "$(bench_hex "$marker")" >"$dir/db/test.ndb"
	printf 'aa15bcf478d165efd2065190eb473bcb:544:ClamAV-Test-File\n' >"$dir/db/test.hdb"
	dbdir=$dir/db
	if [[ -n ${BENCH_DB:-} ]]; then
		[[ -d $BENCH_DB ]] || { echo "run.sh: BENCH_DB=$BENCH_DB is not a directory" >&2; exit 2; }
		dbdir=$BENCH_DB
	fi
	cat >"$dir/clamd.conf" <<CONF
Foreground yes
LocalSocket $dir/clamd.sock
LocalSocketMode 666
DatabaseDirectory $dbdir
TemporaryDirectory $dir/tmp
LogFile $dir/clamd.log
PidFile $dir/clamd.pid
StreamMaxLength 100M
MaxThreads 10
CONF
}

bench_hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

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
