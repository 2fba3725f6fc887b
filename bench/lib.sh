# Shared by the benchmark scripts (sourced): the gateway under test and a
# real clamd with the test database, set up the same way for every run.

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
	local dir=$1 eicar marker
	mkdir -p "$dir/db" "$dir/tmp"
	eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
	marker='CLAMGATE-SECOND-MARK'
	printf 'Eicar-Test-Signature:0:*:%s\nClamgate-Test-Marker:0:*:%s\n' "$(bench_hex "$eicar")" "$(bench_hex "$marker")" >"$dir/db/test.ndb"
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
