#!/usr/bin/env bash
# The Debian package's own path, run as root inside the booted Debian 12 host
# by e2e/rehearse-package.sh: dpkg -i, the conffile and the clients edited as
# the docs tell, enable --now, EICAR through each client, reload under load,
# restart, purge. Each step prints its evidence (and "figure NAME VALUE" lines
# the outer script sums up) and exits non-zero at the first thing that is not
# as it must be.
#   package-inside.sh install | configure | start | engine | scans | reload | restart | purge
set -euo pipefail
source /root/e2e/inside.sh
SOCK=unix:/run/clamgate/clamd.sock

figure() { echo "  figure $1 $2"; echo "$1 $2" >> "$E2E/figures"; }

# install: the package as an administrator installs it, on a host where
# freshclam has filled /var/lib/clamav (here: a synthetic database of
# millions of signatures, and EICAR).
pkg_install() {
  printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$EICAR" | od -An -tx1 | tr -d ' \n')" > /var/lib/clamav/rehearsal.ndb
  cp "$E2E"/db/* /var/lib/clamav/
  chown clamav:clamav /var/lib/clamav/*
  echo "  /var/lib/clamav: $(du -sm /var/lib/clamav | cut -f1) MiB, $(cat /var/lib/clamav/*.ndb /var/lib/clamav/*.hdb | wc -l) signatures"
  dpkg -i /root/clamgate.deb > "$E2E/dpkg.txt" 2>&1 || { cat "$E2E/dpkg.txt"; fail "dpkg -i clamgate.deb"; }
  ok "installed $(dpkg-query -W -f='${Package} ${Version}' clamgate)"
  systemctl is-active -q clamgate.service clamgate-engine.service && fail "the package started clamgate on install"
  getent passwd clamgate-engine >/dev/null || fail "no clamgate-engine user"
  ok "not started on install; users clamgate and clamgate-engine exist"
}

# configure: exactly the steps the docs give an administrator (see the
# report of issue 22: "Docs, the packaged path").
configure() {
  # amavis: clamgate opens amavis's parts (0640, group amavis) and gives its socket amavis's group.
  adduser --quiet clamgate amavis
  # postfix: smtpd runs chrooted in /var/spool/postfix, so the milter's socket lives there.
  install -d -o clamgate -g postfix -m 2750 /var/spool/postfix/clamgate
  cat >> /etc/clamgate/clamgate.toml <<'EOF'

# amavis: CONTSCAN of the parts it writes under /var/lib/amavis/tmp
[[listener]]
address = "unix:/run/clamgate/amavis.sock"
policy = "amavis"
group = "amavis"

[policy.amavis]
users = ["amavis"]
roots = ["/var/lib/amavis/tmp"]
allow_writable_root_ancestors = true   # /var/lib/amavis belongs to amavis

# postfix: the milter
[[listener]]
address = "unix:/var/spool/postfix/clamgate/milter.sock"
protocol = "milter"
policy = "postfix"
group = "postfix"

[policy.postfix]
users = ["postfix"]

# squid: ICAP, on loopback
[[listener]]
address = "tcp:127.0.0.1:1344"
protocol = "icap"
policy = "squid"

[policy.squid]
EOF
  cat > /etc/amavis/conf.d/50-user <<'EOF'
use strict;
# Virus checks on (Debian ships them off), through clamgate.
@bypass_virus_checks_maps = (
   \%bypass_virus_checks, \@bypass_virus_checks_acl, \$bypass_virus_checks_re);
@av_scanners = (
  ['ClamAV-clamd via clamgate',
    \&ask_daemon, ["CONTSCAN {}\n", "/run/clamgate/amavis.sock"],
    qr/\bOK$/m, qr/\bFOUND$/m,
    qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
# The engine unreachable: keep the mail queued rather than pass it unchecked.
$final_unchecked_destiny = D_TEMPFAIL;
$final_virus_destiny = D_DISCARD;
$log_level = 2;
1;
EOF
  postconf -e 'smtpd_milters = unix:/clamgate/milter.sock' 'non_smtpd_milters = $smtpd_milters' \
    'milter_default_action = tempfail' 'milter_protocol = 6'
  cat >> /etc/squid/squid.conf <<'EOF'
icap_enable on
icap_service clamgate respmod_precache icap://127.0.0.1:1344/avscan bypass=off
adaptation_access clamgate allow all
EOF
  # The rehearsal's own mail routes (amavis on port 2525 alone), mailbox and web origin.
  mail_and_web
  cp "$E2E/before/etc/systemd/system/rehearsal-origin.service" /etc/systemd/system/
  systemctl daemon-reload
  systemctl enable --now rehearsal-origin.service
  clamgate config check > "$E2E/check.txt" 2>&1 || { cat "$E2E/check.txt"; fail "clamgate config check"; }
  ok "clamgate config check: $(tail -n 1 "$E2E/check.txt")"
}

# first_verdict: EICAR streamed to the packaged socket until it is found.
first_verdict() {
  local out
  out=$(printf '%s' "$EICAR" | clamgate scan --gateway "$SOCK" - 2>&1) && return 1
  [[ $out == *"Eicar-Test-Signature"*FOUND* ]]
}

start() {
  local t0 took
  t0=$(date +%s.%N)
  systemctl enable --now clamgate.service 2>&1 | sed 's/^/  /'
  took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  retry 600 first_verdict || fail "no verdict from the packaged socket: $(systemctl status --no-pager clamgate-engine clamgate | tail -n 20)"
  figure enable_now_s "$took"
  figure first_verdict_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
  systemctl is-active -q clamgate-engine.service || fail "clamgate-engine.service is not active"
  systemctl restart amavis.service postfix.service squid.service
  retry 60 test -S /var/spool/postfix/clamgate/milter.sock || fail "no milter socket"
  gateway_ready
}

# engine: the managed clamd in its own unit, as the article hardens it.
engine_unit() {
  local pid gw st uid caps nnp budget
  pid=$(systemctl show -p MainPID --value clamgate-engine.service)
  [[ $pid != 0 && $(cat /proc/$pid/comm) == clamd ]] || fail "clamgate-engine.service's main process is not clamd ($pid)"
  [[ $(pgrep -xc clamd) == 1 ]] || fail "more than one clamd: $(pgrep -xa clamd)"
  gw=$(systemctl show -p MainPID --value clamgate.service)
  grep -q 'clamgate-engine.service' /proc/$pid/cgroup || fail "clamd is not in clamgate-engine.service's cgroup: $(cat /proc/$pid/cgroup)"
  grep -q 'clamgate-engine' /proc/$gw/cgroup && fail "the gateway shares the engine's cgroup"
  ok "clamd pid $pid in $(grep -m1 name=systemd /proc/$pid/cgroup | cut -d: -f3), the gateway (pid $gw) in $(grep -m1 name=systemd /proc/$gw/cgroup | cut -d: -f3)"
  st=/proc/$pid/status
  uid=$(awk '/^Uid:/ {print $2}' "$st"); caps=$(awk '/^CapEff:/ {print $2}' "$st"); nnp=$(awk '/^NoNewPrivs:/ {print $2}' "$st")
  [[ $(id -nu "$uid") == clamgate-engine ]] || fail "clamd runs as $(id -nu "$uid")"
  [[ $(awk '/^CapBnd:/ {print $2}' "$st") == 0000000000000000 && $caps == 0000000000000000 ]] || fail "clamd has capabilities"
  [[ $nnp == 1 ]] || fail "clamd has NoNewPrivs $nnp"
  ok "clamd uid $uid (clamgate-engine), CapEff and CapBnd 0, NoNewPrivs $nnp"
  [[ $(readlink /proc/$pid/ns/net) != $(readlink /proc/1/ns/net) ]] || fail "clamd shares the host's network namespace"
  [[ $(nsenter -t "$pid" -n ip -o link | awk -F': ' '{print $2}' | paste -sd, -) == lo ]] || fail "clamd has interfaces besides lo"
  ok "clamd's network: a namespace of its own with lo only"
  awk '$5 == "/var/lib/clamav" {print $6}' /proc/$pid/mountinfo | grep -q '^ro' || fail "clamd's /var/lib/clamav is not read-only"
  nsenter -t "$pid" -m setpriv --reuid clamgate-engine --regid clamgate-engine --clear-groups touch /var/lib/clamav/x 2>/dev/null &&
    fail "clamd's user can write the database"
  nsenter -t "$pid" -m test -e /var/spool/postfix && fail "clamd sees /var/spool"
  ok "database read-only in clamd's mount namespace, the rest of /var hidden"
  budget=$(systemctl show -p MemoryMax --value clamgate-engine.service)
  [[ $budget =~ ^[0-9]+$ ]] || fail "clamgate-engine.service has no MemoryMax ($budget)"
  figure engine_memory_max_mib $((budget >> 20))
  figure database_disk_mib "$(du -sm /var/lib/clamav | cut -f1)"
  local limit=/sys/fs/cgroup/memory/system.slice/clamgate-engine.service/memory.limit_in_bytes
  if [[ -r $limit ]]; then
    echo "  the memory controller enforces $(( $(cat $limit) >> 20 )) MiB ($limit)"
  else
    echo "  no memory controller for this host's systemd (podman on cgroup v1): MemoryMax is set, not enforced here"
  fi
  figure engine_rss_mib $(( $(awk '/^VmRSS/ {print $2}' "$st") >> 10 ))
  figure gateway_rss_mib $(( $(awk '/^VmRSS/ {print $2}' /proc/$gw/status) >> 10 ))
  local metric
  metric=$(curl -s http://127.0.0.1:9310/metrics | awk '/^clamgate_engine_rss_bytes/ {printf "%d", $2}')
  [[ -n $metric && $metric -gt 0 ]] || fail "/metrics has no engine RSS for the unit's clamd"
  ok "the gateway's /metrics: clamgate_engine_rss_bytes $((metric >> 20)) MiB (clamd's pid through its socket)"
  grep -q '^ConcurrentDatabaseReload' /run/clamgate-engine/clamd.conf && echo "  reload: $(head -n 1 /run/clamgate-engine/clamd.conf | cut -c1-160)"
}

# loader N SECONDS OUT: N clients stream unique clean bodies and EICAR to the
# packaged socket for SECONDS; one line per scan in OUT: ok, or fail and why.
loader() {
  local n=$1 secs=$2 out=$3 i
  for i in $(seq "$n"); do
    (
      end=$((SECONDS + secs)); k=0
      while ((SECONDS < end)); do
        k=$((k + 1))
        if ((k % 2)); then
          r=$(printf '%s' "$EICAR" | clamgate scan --gateway "$SOCK" - 2>&1) && rc=0 || rc=$?
          [[ $rc == 1 && $r == *FOUND* ]] && echo ok || echo "fail eicar rc=$rc $r"
        else
          r=$(head -c 65536 /dev/urandom | clamgate scan --gateway "$SOCK" - 2>&1) && rc=0 || rc=$?
          [[ $rc == 0 ]] && echo ok || echo "fail clean rc=$rc $r"
        fi
      done
    ) >> "$out" &
  done
}

# reload: systemctl reload (a changed configuration) and a database update,
# both while clients scan: not one scan may fail.
reload() {
  local out=$E2E/load.txt t0 marker tmp log
  : > "$out"
  loader 4 40 "$out"
  sleep 5
  sed -i 's/^\[policy.squid\]$/[policy.squid]\nmax_concurrent = 6/' /etc/clamgate/clamgate.toml
  t0=$(date +%s.%N)
  systemctl reload clamgate.service
  figure systemctl_reload_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')"
  systemctl is-active -q clamgate.service || fail "clamgate is not active after systemctl reload"
  journalctl -u clamgate --since "-60s" -o cat | grep 'SIGHUP: re-reading the configuration' >/dev/null || fail "the reload did not reach the gateway"
  sleep 3
  # A freshclam-style update: the gateway reloads clamd (3 M signatures) under the same load.
  marker="CLAMGATE-PACKAGE-UPDATE-$(date +%s)"
  tmp=/var/lib/clamav/tmp.rehearsal.$$
  printf 'Clamgate.Package.Update:0:*:%s\n' "$(printf '%s' "$marker" | od -An -tx1 | tr -d ' \n')" > "$tmp"
  chown clamav:clamav "$tmp"
  t0=$(date +%s.%N)
  mv "$tmp" /var/lib/clamav/rehearsal-update.ndb
  retry 300 bash -c "printf '%s' '$marker' | clamgate scan --gateway $SOCK - | grep -q Clamgate.Package.Update" ||
    fail "the new signature was not served within 300 s"
  figure db_update_served_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
  wait
  # took: from the change's settling to clamd's RELOADING (concurrent) or
  # its first PONG after the reload (frugal: new scans held meanwhile).
  log=$(journalctl -u clamgate --since "-300s" -o cat | grep -E 'database reload mode|signature database \(reload\)' | tail -n 2)
  cut -c1-240 <<<"$log" | sed 's/^/  /'
  figure db_reload_mode "$(grep -o 'mode=[a-z]*' <<<"$log" | head -n 1 | cut -d= -f2)"
  figure db_reload_took "$(grep -o 'took=[0-9.a-zµ]*' <<<"$log" | cut -d= -f2)"
  figure load_scans "$(wc -l < "$out")"
  figure load_failed_scans "$(grep -vc '^ok$' "$out" || true)"
  { grep -v '^ok$' "$out" || true; } | head -n 5 | sed 's/^/  /'
  grep -qv '^ok$' "$out" && fail "scans failed during the reloads"
  ok "$(wc -l < "$out") scans by 4 clients across systemctl reload and a database reload: none failed"
}

restart() {
  local engine t0
  engine=$(systemctl show -p MainPID --value clamgate-engine.service)
  t0=$(date +%s.%N)
  systemctl restart clamgate.service
  retry 60 first_verdict || fail "no verdict after systemctl restart clamgate"
  figure restart_to_verdict_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
  [[ $(systemctl show -p MainPID --value clamgate-engine.service) == "$engine" ]] ||
    fail "restarting clamgate restarted the engine (its database reloaded)"
  ok "systemctl restart clamgate: serving again, the engine kept (pid $engine)"
  gateway_ready
}

purge() {
  apt-get purge -y clamgate > "$E2E/purge.txt" 2>&1 || { cat "$E2E/purge.txt"; fail "apt-get purge clamgate"; }
  pgrep -x clamgate && fail "clamgate still runs"
  pgrep -u clamgate-engine >/dev/null && fail "the engine still runs"
  local left
  left=$(find /etc/clamgate /lib/systemd/system/clamgate*.service /usr/bin/clamgate /usr/share/doc/clamgate \
    /usr/lib/sysusers.d/clamgate.conf /usr/lib/tmpfiles.d/clamgate.conf /run/clamgate /run/clamgate-engine \
    /run/systemd/system.control/clamgate-engine.service.d /var/spool/postfix/clamgate 2>/dev/null || true)
  [[ -z $left ]] || fail "left after purge: $left"
  [[ -z $(systemctl list-units --all --no-legend 'clamgate*') ]] || fail "units left: $(systemctl list-units --all --no-legend 'clamgate*')"
  ok "apt-get purge: no process, unit, file or runtime directory left (the system users stay, as policy says)"
}

case "${1:-}" in
  install) pkg_install ;;
  configure) configure ;;
  start) start ;;
  engine) engine_unit ;;
  scans) scans package ;;
  reload) reload ;;
  restart) restart ;;
  purge) purge ;;
  *) echo "usage: package-inside.sh STEP" >&2; exit 2 ;;
esac
