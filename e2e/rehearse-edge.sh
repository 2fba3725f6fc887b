#!/usr/bin/env bash
# The edge variant rehearsed on the booted Debian 12 host (docs/deploy.md,
# "The edge variant"): a scanning pool outside the host (one real clamd
# and two clamgate endpoints over mutual TLS, plain processes on this
# machine, reached from the host through podman's bridge), the host set up
# as e2e/rehearse.sh sets it up (clamav-daemon, clamd@amavis, clamav-milter,
# c-icap), then `clamgate deploy apply --pool ... --activate` from the
# Debian package: no clamd left on the host, amavis's, the milter's,
# squid's and clamdscan's scans in the pool's audit log under the host's
# certificate; one endpoint killed (the other takes over), both killed
# (errors and tempfails, never OK), one back; rollback byte for byte and
# the host's clamd back. Steps inside the host: e2e/edge-inside.sh.
#
#   e2e/rehearse-edge.sh   (as root; E2E_CACHE, E2E_KEEP=1 as for e2e/rehearse.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
source e2e/lib.sh
requirements
host_image
pool=$work/pool
pool_pids=()

# pool_stop ends the pool's processes (the ones this script started, by pid).
pool_stop() {
  local pid
  for pid in "${pool_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap 'rc=$?; pool_stop; (exit $rc); cleanup' EXIT

step "clamgate from this tree: its Debian package for the host, a binary for the pool"
build_package
go build -o "$work/clamgate" ./cmd/clamgate
mkdir -p "$work/e2e/db" "$work/tls" "$pool/db" "$pool/tmp"
go run ./bench/gensigs -dir "$work/e2e/db" -body 1000 -hashes 1000
cp e2e/inside.sh e2e/edge-inside.sh "$work/e2e/"
cp -r e2e/host/before "$work/e2e/before"

step "boot the host"
boot_host
podman cp "$work/e2e" "$name:/root/e2e"
podman cp "$work/clamgate.deb" "$name:/root/clamgate.deb"
inside wait first
gw=$(podman exec "$name" ip -4 route show default | awk '{print $3; exit}')
echo "  the host reaches this machine at $gw (podman's bridge)"

step "the pool: one clamd, two clamgate endpoints on $gw with mutual TLS (plain processes on this machine)"
"$work/clamgate" tls new-ca --dir "$pool/tls" >/dev/null
"$work/clamgate" tls issue --dir "$pool/tls" --name pool --id "ip:$gw" --id dns:pool.rehearsal.test >/dev/null
"$work/clamgate" tls issue --dir "$pool/tls" --name mail --id dns:mail.rehearsal.test >/dev/null
cp "$pool/tls/ca.crt" "$pool/tls/mail.crt" "$pool/tls/mail.key" "$work/tls/"
eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" > "$pool/db/pool.ndb"
cat > "$pool/clamd.conf" <<EOF
Foreground yes
LocalSocket $pool/clamd.sock
DatabaseDirectory $pool/db
TemporaryDirectory $pool/tmp
StreamMaxLength 100M
MaxThreads 10
AlertExceedsMax yes
EOF
clamd --config-file="$pool/clamd.conf" > "$pool/clamd.log" 2>&1 &
pool_pids+=($!)
for _ in $(seq 60); do [[ -S $pool/clamd.sock ]] && break; sleep 1; done
[[ -S $pool/clamd.sock ]] || { cat "$pool/clamd.log"; echo "the pool's clamd did not start"; exit 1; }

# free_port: a TCP port nothing on this machine listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}
# endpoint N PORT: the pool's Nth clamgate, serving tls:$gw:PORT; its audit log in $pool/endpointN.log.
endpoint() {
  cat > "$pool/endpoint$1.toml" <<EOF
[backend]
address = "unix:$pool/clamd.sock"
stream_max_length = "100M"

[[listener]]
address = "tls:$gw:$2"
protocol = "clamd"
policy = "edges"
tls_cert = "$pool/tls/pool.crt"
tls_key = "$pool/tls/pool.key"
tls_client_ca = "$pool/tls/ca.crt"

[policy.edges]
tls_identities = ["dns:mail.rehearsal.test"]
commands = ["PING", "VERSION", "INSTREAM"]
EOF
  "$work/clamgate" serve --config "$pool/endpoint$1.toml" >> "$pool/endpoint$1.log" 2>&1 &
  pool_pids+=($!)
  eval "endpoint$1_pid=$!"
  for _ in $(seq 30); do
    grep -q 'msg="clamd answers"' "$pool/endpoint$1.log" && return
    sleep 1
  done
  cat "$pool/endpoint$1.log"; echo "pool endpoint $1 did not start"; exit 1
}
port1=$(free_port); endpoint 1 "$port1"
port2=$(free_port); endpoint 2 "$port2"
pool_scan() { "$work/clamgate" scan --address "tls:$gw:$1" --cert "$pool/tls/mail.crt" --key "$pool/tls/mail.key" --ca "$pool/tls/ca.crt" /etc/hostname; }
pool_scan "$port1" | sed 's/^/  endpoint 1: /'
pool_scan "$port2" | sed 's/^/  endpoint 2: /'
podman cp "$work/tls" "$name:/root/e2e/tls"

step "before: the host's own clamd (clamav-daemon, clamd@amavis), clamav-milter, c-icap"
inside setup
inside ram before

step "apply: clamgate deploy apply --pool tls:$gw:$port1 --pool tls:$gw:$port2 --activate (the Debian package)"
steps=edge-inside.sh inside apply "tls:$gw:$port1" "tls:$gw:$port2"
steps=edge-inside.sh inside no-clamd

step "apply: amavis, the milter, squid and clamdscan through the pool"
inside scans edge
# pool_audit N CLIENT: the pool's Nth endpoint logged this host's certificate for an infected and a clean verdict.
pool_audit() {
  local lines
  lines=$(grep 'msg=scan client=edges .*identity=dns:mail.rehearsal.test' "$pool/endpoint$1.log" || true)
  grep -q 'verdict=infected' <<<"$lines" && grep -q 'verdict=clean' <<<"$lines" ||
    { tail -n 20 "$pool/endpoint$1.log"; echo "  FAIL: endpoint $1's audit log has no infected and clean verdict for dns:mail.rehearsal.test"; exit 1; }
  echo "  ok: endpoint $1's audit log: $(grep -c . <<<"$lines") scans from identity=dns:mail.rehearsal.test, e.g."
  grep -m1 'verdict=infected' <<<"$lines" | grep -o 'msg=scan.*' | cut -c1-160 | sed 's/^/      /'
}
pool_audit 1
pool_audit 2
step "apply: doctor on the edge"
inside doctor
step "apply: RAM of every scanning process on the edge"
inside ram edge

step "failover: endpoint 1 killed, endpoint 2 takes over"
kill "$endpoint1_pid"
mark2=$(wc -l < "$pool/endpoint2.log")
steps=edge-inside.sh inside failover
tail -n +"$((mark2 + 1))" "$pool/endpoint2.log" | grep -q 'identity=dns:mail.rehearsal.test' ||
  { echo "  FAIL: endpoint 2 did not get the scans"; exit 1; }
echo "  ok: endpoint 2's audit log has them: $(tail -n +"$((mark2 + 1))" "$pool/endpoint2.log" | grep -c 'msg=scan ') scans"

step "pool down: both endpoints killed, the clients get errors and tempfails, never OK"
kill "$endpoint2_pid"
steps=edge-inside.sh inside pool-down

step "pool back: endpoint 1 restarted"
endpoint 1 "$port1"
steps=edge-inside.sh inside pool-back

step "rollback: clamgate deploy rollback --activate, the host's clamd back"
inside rollback
inside compare
inside scans rollback

step "edge rehearsal passed"
