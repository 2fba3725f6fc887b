#!/usr/bin/env bash
# The edge variant's steps, run as root inside the booted Debian 12 host by
# e2e/rehearse-edge.sh; the shared steps (setup, scans, doctor, rollback,
# compare) are inside.sh's. Each prints its evidence and exits non-zero at
# the first thing that is not as it must be.
#   edge-inside.sh apply POOL1 POOL2 | no-clamd | failover | pool-down | pool-back
set -euo pipefail
source /root/e2e/inside.sh
TLS=/etc/clamgate/tls

# apply: the package, this host's certificate and the pool's CA (before the
# snapshot rollback is compared with, as an administrator puts them there
# before deploying), then deploy plan and apply --activate with --pool.
edge_apply() {
  dpkg -i /root/clamgate.deb > "$E2E/dpkg.txt" 2>&1 || { cat "$E2E/dpkg.txt"; fail "dpkg -i clamgate.deb"; }
  ok "installed $(dpkg-query -W -f='${Package} ${Version}' clamgate)"
  install -d -m 0755 "$TLS"
  install -m 0644 "$E2E/tls/ca.crt" "$TLS/pool-ca.crt"
  install -m 0644 "$E2E/tls/mail.crt" "$TLS/mail.rehearsal.test.crt"
  install -m 0640 -g clamgate "$E2E/tls/mail.key" "$TLS/mail.rehearsal.test.key"
  # Debian enables freshclam when it installs it; the image was built without running presets.
  systemctl enable -q clamav-freshclam.service
  config_sums > "$E2E/before.sums"
  local flags=(--pool "$1" --pool "$2" --pool-cert "$TLS/mail.rehearsal.test.crt" --pool-key "$TLS/mail.rehearsal.test.key" --pool-ca "$TLS/pool-ca.crt")
  clamgate deploy plan "${flags[@]}" > "$E2E/plan.txt" || { cat "$E2E/plan.txt"; fail "deploy plan"; }
  grep '^#' "$E2E/plan.txt" | sed 's/^/  plan /' | cut -c1-200
  grep -q '^# variant: edge' "$E2E/plan.txt" || fail "plan did not choose the edge variant"
  grep -q 'clamgate-clamd\|^+++ /etc/clamgate/clamd.conf' "$E2E/plan.txt" && fail "the edge plan writes an engine"
  grep -q 'WARNING' "$E2E/plan.txt" && fail "the edge plan warns"
  clamgate deploy apply "${flags[@]}" --activate > "$E2E/apply.txt" 2> "$E2E/apply.err" ||
    { tail -n 20 "$E2E/apply.txt" "$E2E/apply.err"; fail "deploy apply --activate"; }
  sed -n '/^applied /,$p' "$E2E/apply.txt" | sed 's/^/  /'
  clamgate deploy apply "${flags[@]}" | grep -q '^nothing to change$' || fail "a second apply is not a no-op"
  ok "a second apply: nothing to change"
  gateway_ready
}

# no_clamd: the end of the migration, no clamd on this host at all, and
# amavis's Wants= cannot bring one back.
no_clamd() {
  local u
  pgrep -x clamd >/dev/null && { ps -o pid,user,args -C clamd; fail "a clamd runs on the edge"; }
  for u in clamav-daemon.service clamav-daemon.socket clamav-milter.service c-icap.service clamd@amavis.service; do
    [[ $(systemctl is-enabled "$u" 2>/dev/null) == masked ]] || fail "$u is not masked"
    systemctl is-active -q "$u" && fail "$u is still active"
  done
  systemctl is-active -q clamgate-clamd.service && fail "an engine unit runs on the edge"
  systemctl restart amavis.service
  retry 120 bash -c '</dev/tcp/127.0.0.1/10024' || fail "amavis does not listen again after its restart"
  pgrep -x clamd >/dev/null && fail "restarting amavis brought a clamd back"
  ok "no clamd process; clamav-daemon(.socket) clamav-milter c-icap clamd@amavis masked and inactive, also after an amavis restart"
  ok "the gateway: $(systemctl show -p MainPID,ActiveState clamgate.service | paste -sd' ')"
}

# failover: endpoint 1 is gone; the health checks take it out and every
# client's scans go to endpoint 2 (the outer script checks its audit log).
failover() {
  local t=failover-$(date +%s) reply out
  # A killed pod's address answers nothing (no refusal): the health checks
  # take it out after 3 PINGs time out (2 s each); a scan sent to it before
  # that waits for its own timeout.
  sleep 8
  reply=$(mail 25 eicar "milter-eicar-$t")
  [[ $reply == *" 550 "* ]] || fail "the milter path did not reject EICAR with one endpoint down: $reply"
  reply=$(mail 25 clean "milter-clean-$t")
  [[ $reply == *" 250 "* ]] || fail "the milter path refused a clean mail with one endpoint down: $reply"
  ok "postfix milter: EICAR rejected, clean accepted"
  out=$(clamdscan --no-summary /srv/www/eicar.txt 2>&1) && fail "clamdscan: EICAR passed: $out"
  [[ $out == *FOUND* ]] || fail "clamdscan EICAR with one endpoint down: $out"
  clamdscan --no-summary --stream /srv/www/clean.txt >/dev/null || fail "clamdscan clean with one endpoint down"
  ok "clamdscan: EICAR found, clean OK"
  amavis_blocks "failover-$t"
  journalctl -u clamgate --since '-60s' -o cat | grep -m1 -E 'taken out|not answering' | sed 's/^/  the gateway: /' | cut -c1-200 || true
}

# amavis_blocks TAG: EICAR through postfix -> amavis is held, by its clamd
# entry (the gateway), not by the clamscan backup.
amavis_blocks() {
  local since
  since=$(date '+%Y-%m-%d %H:%M:%S'); sleep 1
  mail 2525 eicar "amavis-eicar-$1" >/dev/null
  retry 120 bash -c "journalctl -u amavis --since '$since' | grep -q 'Blocked INFECTED (Eicar-Test-Signature'" ||
    fail "amavis did not block EICAR"
  journalctl -u amavis --since "$since" | grep -v 'Found secondary av scanner' | grep -q 'ClamAV-clamscan' && fail "amavis fell back to clamscan"
  ok "postfix -> amavis: EICAR held by its clamd entry (the pool)"
}

# pool_down: no endpoint answers. Nothing gets OK: the milter tempfails
# (451, the sender retries), clamdscan and squid get errors, amavis's clamd
# entry fails and amavis falls back to its clamscan backup scanner, which
# reads the host's own database (kept current by freshclam, see
# docs/deploy.md) or defers the mail; nothing is delivered unscanned.
pool_down() {
  local t=down-$(date +%s) reply out code since
  # The health checks notice: 3 PINGs in a row time out (2 s each) for an
  # address that answers nothing, checked one backend after the other, so
  # about 12 s with both pods gone; a refused connection is taken out at once.
  sleep 15
  local start
  start=$(date '+%Y-%m-%d %H:%M:%S')
  for kind in eicar clean; do
    reply=$(mail 25 "$kind" "milter-$kind-$t")
    [[ $reply == *" 451 "* || $reply == *" 421 "* ]] || fail "the milter path did not tempfail $kind with the pool down: $reply"
  done
  ok "postfix milter: EICAR and clean mail tempfailed: ${reply#<* }"
  for mode in "" --stream --fdpass; do
    out=$(clamdscan --no-summary $mode /srv/www/clean.txt 2>&1) && fail "clamdscan ${mode:-(path)}: exit 0 with the pool down: $out"
    [[ $out == *ERROR* ]] || fail "clamdscan ${mode:-(path)}: $out"
    [[ $out == *": OK"* ]] && fail "clamdscan ${mode:-(path)} said OK: $out"
  done
  ok "clamdscan (path, --stream, --fdpass): ERROR, never OK: $(head -n1 <<<"$out" | cut -c1-120)"
  code=$(curl -s --max-time 60 -o /dev/null -w '%{http_code}' -x http://127.0.0.1:3128 "http://127.0.0.1:8080/clean.txt?$t")
  [[ $code == 200 ]] && fail "squid delivered a download with the pool down"
  ok "squid: the download refused (HTTP $code)"
  since=$(date '+%Y-%m-%d %H:%M:%S'); sleep 1
  mail 2525 eicar "amavis-eicar-$t" >/dev/null
  retry 120 bash -c "journalctl -u amavis --since '$since' | grep -qE 'Blocked INFECTED|TEMPFAIL|virus_scan FAILED|all primary virus scanners failed'" ||
    fail "amavis neither blocked nor deferred EICAR with the pool down"
  journalctl -u amavis --since "$since" -o cat | grep -m3 -E 'ClamAV-clamd|primary|clamscan|Blocked|TEMPFAIL' | cut -c1-180 | sed 's/^/  amavis: /'
  sleep 2
  delivered "amavis-eicar-$t" && fail "EICAR was delivered with the pool down"
  ok "postfix -> amavis: EICAR not delivered"
  local audit
  audit=$(journalctl -u clamgate --since "$start" -o cat | grep 'msg=scan' || true)
  grep -q 'verdict=clean' <<<"$(grep -v 'client=amavis' <<<"$audit")" && fail "the gateway answered clean with the pool down"
  grep -q 'verdict=failed' <<<"$audit" || fail "no failed verdict in the gateway's audit log with the pool down"
  ok "the gateway's audit log, pool down, no clean verdict: $(grep -o 'verdict=[a-z]*' <<<"$audit" | sort | uniq -c | paste -sd' ' - | tr -s ' ')"
}

# pool_back: one endpoint answers again; the health checks put it back.
pool_back() {
  local t=back-$(date +%s) reply
  retry 30 bash -c "[[ \$(swaks --server 127.0.0.1 --port 25 --from s@$HOST --to rcpt@$HOST --header 'Subject: probe-$t' --attach @/srv/www/clean.txt 2>&1 | awk '/^ -> \\.\$/ {getline; print; exit}') == *' 250 '* ]]" ||
    fail "the milter path still tempfails 30 s after an endpoint came back"
  reply=$(mail 25 eicar "milter-eicar-$t")
  [[ $reply == *" 550 "* ]] || fail "the milter path did not reject EICAR after the pool came back: $reply"
  ok "postfix milter: clean accepted again, EICAR rejected"
  clamdscan --no-summary /srv/www/clean.txt >/dev/null || fail "clamdscan clean after the pool came back"
  ok "clamdscan: clean OK again"
}

case "${1:-}" in
  apply) edge_apply "$2" "$3" ;;
  no-clamd) no_clamd ;;
  failover) failover ;;
  pool-down) pool_down ;;
  pool-back) pool_back ;;
  *) echo "usage: edge-inside.sh STEP" >&2; exit 2 ;;
esac
