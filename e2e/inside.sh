#!/usr/bin/env bash
# The rehearsal's steps, run as root inside the booted Debian 12 host by
# e2e/rehearse.sh (podman exec). Each step prints its evidence and exits
# non-zero at the first thing that is not as it must be.
#   inside.sh wait | setup | scans before|after|rollback | ram NAME | apply |
#             engine | doctor | restart | reboot-check | update | rollback | compare
set -euo pipefail
E2E=/root/e2e
HOST=mail.rehearsal.test
EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
# Configuration compared byte for byte before apply and after rollback.
CONF_DIRS=(/etc/amavis /etc/postfix /etc/squid /etc/clamav /etc/c-icap /etc/clamd.d /etc/systemd/system
           /etc/tmpfiles.d /etc/sysusers.d /etc/containers /etc/clamgate /etc/default)

fail() { echo "  FAIL: $*"; exit 1; }
ok() { echo "  ok: $*"; }
# retry SECONDS CMD...: until CMD succeeds (checks of asynchronous work: mail queues, restarts).
retry() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 1
  done
}

wait_boot() {
  local state
  for _ in $(seq 180); do
    state=$(systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 1
  done
  echo "  systemctl is-system-running: $state"
  [[ $state == running ]] && return
  local failed
  failed=$(systemctl --failed --no-legend --plain | awk '{print $1}' | paste -sd' ' -)
  # First boot only: podman's own units fail until setup gives podman vfs storage.
  if [[ ${1:-} == first && $failed =~ ^(podman[-a-z]*\.service ?)+$ ]]; then
    echo "  failed before setup (podman has no usable storage driver yet): $failed"
    return
  fi
  fail "the host did not boot cleanly; failed units: $failed"
}

# setup turns the freshly booted image into a typical mail and proxy server:
# clamav-daemon (its clamd serves clamav-milter), a second clamd for amavis
# (clamd@amavis, pulled in by amavis.service's Wants=: the trap docs/deploy.md explains),
# c-icap with virus_scan and its own in-process engine behind squid,
# freshclam enabled, and a database "as freshclam would put it".
setup() {
  # This machine's limits for podman inside a container (field notes): vfs
  # storage, and crun under the name runc, the runtime deploy's unit asks for.
  printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
    > /etc/containers/storage.conf
  printf '[engine.runtimes]\nrunc = ["/usr/bin/crun"]\n' > /etc/containers/containers.conf
  systemctl reset-failed

  # The database: EICAR and a synthetic set, loose files (a daily.cld cannot
  # be signed here, so clamav-daemon's ConditionPathExistsGlob is reset).
  printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$EICAR" | od -An -tx1 | tr -d ' \n')" > /var/lib/clamav/rehearsal.ndb
  cp "$E2E"/db/* /var/lib/clamav/
  chown clamav:clamav /var/lib/clamav/*
  cp -r "$E2E"/before/. /

  sed -i -e 's|^MilterSocket .*|MilterSocket /var/spool/postfix/clamav/clamav-milter.ctl|' \
         -e 's|^MilterSocketGroup .*|MilterSocketGroup postfix|' -e 's|^MilterSocketMode .*|MilterSocketMode 660|' \
         -e 's|^OnInfected .*|OnInfected Reject|' /etc/clamav/clamav-milter.conf
  sed -i 's/^START=.*/START=yes/' /etc/default/c-icap
  printf '\n# rehearsal: virus_scan with its own libclamav engine\nInclude clamav_mod.conf\nInclude virus_scan.conf\n' >> /etc/c-icap/c-icap.conf
  cat >> /etc/squid/squid.conf <<'EOF'
# rehearsal: downloads scanned by c-icap's virus_scan
icap_enable on
icap_service service_resp respmod_precache bypass=0 icap://127.0.0.1:1344/virus_scan
adaptation_access service_resp allow all
EOF
  postconf -e 'smtpd_milters = unix:/clamav/clamav-milter.ctl' 'non_smtpd_milters = $smtpd_milters' 'milter_default_action = tempfail'
  mail_and_web
  systemctl daemon-reload
  systemctl enable --now clamav-daemon.socket clamav-daemon.service clamd@amavis.service c-icap.service rehearsal-origin.service
  systemctl restart clamav-milter.service amavis.service postfix.service squid.service
  retry 120 test -S /run/clamav/clamd.ctl || fail "clamav-daemon has no socket"
  retry 120 test -S /run/clamd.amavis/clamd.sock || fail "clamd@amavis has no socket"
  retry 60 test -S /var/spool/postfix/clamav/clamav-milter.ctl || fail "clamav-milter has no socket"
  retry 60 bash -c '</dev/tcp/127.0.0.1/1344' || fail "c-icap does not listen"
  systemctl list-units --no-legend 'clam*' 'amavis*' 'c-icap*' 'squid*' 'postfix@*' | sed 's/^/  /'
}

# mail_and_web: postfix hands mail to amavis (content_filter) and delivers it
# locally, the rcpt mailbox, the web origin behind squid; the milter and the
# scanners are each path's own.
mail_and_web() {
  postconf -e "myhostname = $HOST" "mydestination = \$myhostname, localhost" \
    'content_filter = smtp-amavis:[127.0.0.1]:10024'
  # Port 2525: the same postfix without the milter, so that the amavis path is tested on its own.
  cat >> /etc/postfix/master.cf <<'EOF'
2525      inet  n       -       y       -       -       smtpd
  -o smtpd_milters= -o non_smtpd_milters=
smtp-amavis unix -      -       n       -       2       smtp
  -o smtp_data_done_timeout=1200 -o smtp_send_xforward_command=yes -o disable_dns_lookups=yes
127.0.0.1:10025 inet n  -       n       -       -       smtpd
  -o content_filter= -o smtpd_milters= -o non_smtpd_milters= -o mynetworks=127.0.0.0/8
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
EOF
  id rcpt >/dev/null 2>&1 || useradd -m rcpt
  mkdir -p /srv/www
  printf '%s' "$EICAR" > /srv/www/eicar.txt
  head -c 12000 /dev/urandom | base64 > /srv/www/clean.txt   # small: squid 5.7 stalls larger bodies behind c-icap (docs/squid.md)

}

# mail PORT KIND TAG: sends /srv/www/KIND.txt (eicar, clean, update) with swaks; prints the reply to its data.
mail() {
  local port=$1 kind=$2 tag=$3 body=/srv/www/$2.txt
  # swaks exits non-zero on a rejection, which is an answer here, not an error.
  { swaks --server 127.0.0.1 --port "$port" --from sender@$HOST --to rcpt@$HOST --header "Subject: $tag" \
    --attach-type application/octet-stream --attach @"$body" 2>&1 || true; } | data_reply
}

# data_reply keeps the server's reply to the end of the message (swaks prints "<-" or "<**").
data_reply() { awk '/^ -> \.$/ {getline; print; exit}'; }

delivered() { grep -q "^Subject: $1\$" /var/mail/rcpt 2>/dev/null; }

# scans PHASE: the EICAR and clean cases through the amavis path, the milter
# path and squid; after apply each must also be in clamgate's audit log.
scans() {
  local phase=$1 t reply since
  t="$phase-$(date +%s)"
  since=$(date '+%Y-%m-%d %H:%M:%S')
  sleep 1

  reply=$(mail 2525 eicar "amavis-eicar-$t")
  [[ $reply == *" 250 "* ]] || fail "postfix did not queue the EICAR mail for amavis: $reply"
  retry 120 bash -c "journalctl -u amavis --since '$since' | grep -q 'Blocked INFECTED (Eicar-Test-Signature'" ||
    fail "amavis did not block the EICAR mail"
  echo "  amavis: $(journalctl -u amavis --since "$since" -o cat | grep -m1 -o 'Blocked INFECTED (Eicar-Test-Signature.*' | cut -c1-110)"
  if journalctl -u amavis --since "$since" | grep -v 'Found secondary av scanner' | grep -q 'ClamAV-clamscan'; then
    fail "amavis fell back to clamscan: its clamd entry did not answer"
  fi
  delivered "amavis-eicar-$t" && fail "the EICAR mail reached the mailbox"
  ok "postfix -> amavis: EICAR held, not delivered"
  reply=$(mail 2525 clean "amavis-clean-$t")
  retry 120 delivered "amavis-clean-$t" || fail "the clean mail through amavis was not delivered ($reply)"
  ok "postfix -> amavis: clean mail delivered"

  reply=$(mail 25 eicar "milter-eicar-$t")
  [[ $reply == *" 550 "* ]] || fail "the milter path did not reject the EICAR mail: $reply"
  ok "postfix milter: EICAR rejected: ${reply#<* }"
  reply=$(mail 25 clean "milter-clean-$t")
  [[ $reply == *" 250 "* ]] || fail "the milter path refused a clean mail: $reply"
  retry 120 delivered "milter-clean-$t" || fail "the clean mail through the milter was not delivered"
  ok "postfix milter: clean mail accepted and delivered"

  local code page
  page=$(mktemp)
  code=$(curl -s --max-time 60 -o "$page" -w '%{http_code}' -x http://127.0.0.1:3128 "http://127.0.0.1:8080/eicar.txt?$t")
  [[ $code == 403 ]] || fail "squid delivered the EICAR download (HTTP $code)"
  grep -aq Eicar-Test-Signature "$page" || fail "squid's 403 page does not name the threat"
  ok "squid: EICAR download blocked (HTTP 403, the page names $(grep -ao -m1 'Eicar-Test-Signature[A-Za-z.]*' "$page"))"
  code=$(curl -s --max-time 60 -o "$page" -w '%{http_code}' -x http://127.0.0.1:3128 "http://127.0.0.1:8080/clean.txt?$t")
  [[ $code == 200 ]] && cmp -s "$page" /srv/www/clean.txt || fail "squid did not deliver the clean download intact (HTTP $code)"
  ok "squid: clean download delivered intact ($(stat -c %s "$page") bytes)"
  rm -f "$page"

  # The host's clamdscan, as root, through whatever /etc/clamav/clamd.conf's LocalSocket names:
  # Debian's clamd before and after rollback, clamgate's host-wide socket after apply. The
  # package's own path (phase "package") leaves clamd.conf as it is: deploy is what repoints it.
  local mode out clients="amavis postfix squid"
  if [[ $phase != package ]]; then
    for mode in "" --fdpass --stream; do
      out=$(clamdscan --no-summary $mode /srv/www/eicar.txt 2>&1) && fail "clamdscan ${mode:-(path)}: EICAR passed: $out"
      [[ $out == *"Eicar-Test-Signature"*FOUND* ]] || fail "clamdscan ${mode:-(path)} EICAR: $out"
      out=$(clamdscan --no-summary $mode /srv/www/clean.txt 2>&1) || fail "clamdscan ${mode:-(path)} clean: $out"
    done
    ok "clamdscan (path, --fdpass, --stream): EICAR found, clean OK, via $(grep -m1 '^LocalSocket ' /etc/clamav/clamd.conf)"
    clients+=" local"
  fi

  if [[ $phase != before && $phase != rollback ]]; then
    local audit
    audit=$(journalctl -u clamgate --since "$since" -o cat)
    for client in $clients; do
      grep -q "msg=scan client=$client .*verdict=infected" <<<"$audit" || fail "no infected verdict for $client in clamgate's audit log"
      grep -q "msg=scan client=$client .*verdict=clean" <<<"$audit" || fail "no clean verdict for $client in clamgate's audit log"
    done
    ok "clamgate's audit log has an infected and a clean verdict for each of: $clients"
  fi
}

# ram NAME: resident (RSS) and proportional (PSS: shared pages split between
# the processes sharing them) memory of every scanning process.
ram() {
  local rss=0 pss=0 pid comm r p
  printf '  %-8s %-16s %10s %10s\n' PID PROCESS RSS_KiB PSS_KiB
  for pid in $(pgrep -x 'clamd|c-icap|clamav-milter|clamgate' | sort -n); do
    comm=$(cat /proc/$pid/comm)
    r=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
    p=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)
    printf '  %-8s %-16s %10s %10s\n' "$pid" "$comm" "$r" "$p"
    rss=$((rss + r)); pss=$((pss + p))
  done
  printf '  %-25s %10s %10s\n' total "$rss" "$pss"
  echo "$rss $pss" > "$E2E/ram-$1"
}

config_sums() {
  # A directory apply creates (/etc/clamgate) is missing before: find's error is expected.
  { find "${CONF_DIRS[@]}" \( -type f -o -type l \) 2>/dev/null || true; } | sort | while read -r f; do
    if [[ -L $f ]]; then echo "link $(readlink "$f") $f"; else echo "$(sha256sum < "$f" | cut -c1-64) $(stat -c '%a %U:%G' "$f") $f"; fi
  done
}

apply() {
  local ref
  # Installed before the snapshot, as an administrator installs it before
  # deploying: its conffile and units are part of what rollback must restore.
  dpkg -i /root/clamgate.deb > "$E2E/dpkg.txt" 2>&1 || { cat "$E2E/dpkg.txt"; fail "dpkg -i clamgate.deb"; }
  ok "installed $(dpkg-query -W -f='${Package} ${Version}' clamgate): $(clamgate version | head -n 1)"
  ref=$(bash "$E2E/build.sh" | tail -n 1)
  echo "  engine image (deploy/image/build.sh, on this host): $ref"
  config_sums > "$E2E/before.sums"
  clamgate deploy plan --image "$ref" > "$E2E/plan.txt"
  grep '^#' "$E2E/plan.txt" | sed 's/^/  plan /'
  grep -q 'clients detected: amavis, postfix, squid' "$E2E/plan.txt" || fail "plan did not detect amavis, postfix and squid"
  grep -q 'unit clamd@amavis.service: found; wanted by amavis.service' "$E2E/plan.txt" || fail "plan missed clamd@amavis and its Wants="
  echo "  plan: $(grep -c '^+++ ' "$E2E/plan.txt") files, $(grep -c '^symlink ' "$E2E/plan.txt") masks"
  clamgate deploy apply --image "$ref" --activate > "$E2E/apply.txt" 2> "$E2E/apply.err" ||
    { tail -n 20 "$E2E/apply.txt" "$E2E/apply.err"; fail "deploy apply --activate"; }
  sed -n '/^applied /,$p' "$E2E/apply.txt" | sed 's/^/  /'
  clamgate deploy apply --image "$ref" | grep -q '^nothing to change$' || fail "a second apply is not a no-op"
  ok "a second apply: nothing to change"
  gateway_ready
}

# restart: clamgate.socket holds every listener, the unix ones too: each is
# systemd's (the gateway's log says so) with its directory's group, and
# clamdscan loops on the host-wide socket see no refused connection and no
# failure across a systemctl restart.
restart() {
  local sock since n fails
  since=$(date '+%F %T')
  for sock in /run/clamgate/amavis/clamd.sock:amavis /var/spool/postfix/clamgate/milter.sock:postfix /run/clamgate/local/clamd.sock:clamav; do
    [[ $(stat -c '%a %G' "${sock%%:*}") == "660 ${sock##*:}" ]] || fail "${sock%%:*}: $(stat -c '%a %U:%G' "${sock%%:*}"), want 660 group ${sock##*:}"
  done
  ok "unix sockets from clamgate.socket: mode 660, groups amavis, postfix, clamav"
  # systemd binds them as root: the gateway's user must not be able to swap
  # their directory for a link (the parent is root's).
  setpriv --reuid=clamgate --regid=clamgate --clear-groups mv /run/clamgate/local /run/clamgate/swapped 2>/dev/null &&
    fail "user clamgate renamed /run/clamgate/local, where systemd binds a socket as root"
  ok "user clamgate cannot swap the socket directories systemd binds in (/run/clamgate is root's)"
  rm -f "$E2E"/loop-*
  for n in 1 2 3 4; do
    (end=$((SECONDS + 12)); while ((SECONDS < end)); do
       if clamdscan --no-summary --stream /srv/www/clean.txt > "$E2E/loop-$n.out" 2>&1; then echo ok; else echo "fail $(tr '\n' ' ' < "$E2E/loop-$n.out")"; fi
     done > "$E2E/loop-$n") &
  done
  sleep 3
  local t0=$SECONDS
  systemctl restart clamgate.service
  echo "  systemctl restart clamgate.service: $((SECONDS - t0)) s"
  wait
  n=$(cat "$E2E"/loop-* | grep -c '^ok' || true)
  fails=$(cat "$E2E"/loop-* | grep '^fail' || true)
  [[ -z $fails ]] || fail "across the restart, of $((n + $(wc -l <<<"$fails"))) scans: $(sort "$E2E"/loop-* | uniq -c | grep fail | head -n 3)"
  ok "$n clamdscan --stream scans on the host-wide socket across the restart: 0 refused, 0 failed"
  journalctl -u clamgate --since "$since" -o cat | grep 'socket from systemd.*address=unix:/run/clamgate/local/clamd.sock' >/dev/null ||
    fail "the restarted gateway did not take the host-wide socket from systemd"
  ok "the restarted gateway took its unix sockets from systemd"
}

gateway_ready() {
  retry 120 curl -fs http://127.0.0.1:9310/readyz || fail "clamgate is not ready: $(curl -s http://127.0.0.1:9310/readyz)"
  ok "clamgate ready: $(curl -s http://127.0.0.1:9310/readyz | head -c 80)"
}

# engine: exactly one clamd on the host, the container's, and how it runs.
engine() {
  local pids pid st
  pids=$(pgrep -x clamd || true)
  [[ $(wc -w <<<"$pids") == 1 ]] || { ps -o pid,user,args -p "${pids// /,}"; fail "expected exactly one clamd, found: $pids"; }
  pid=$pids
  st=/proc/$pid/status
  echo "  clamd pid $pid, cgroup $(grep -m1 name=systemd /proc/$pid/cgroup | cut -d: -f3 | grep -o 'clamgate-clamd.service.*' | cut -c1-40)"
  grep -q 'clamgate-clamd.service/libpod-payload' /proc/$pid/cgroup || fail "clamd is not inside clamgate-clamd.service's container"
  local uid caps nnp
  uid=$(awk '/^Uid:/ {print $2}' "$st"); caps=$(awk '/^CapEff:/ {print $2}' "$st"); nnp=$(awk '/^NoNewPrivs:/ {print $2}' "$st")
  [[ $uid != 0 ]] || fail "clamd runs as root"
  [[ $caps == 0000000000000000 ]] || fail "clamd has CapEff $caps"
  [[ $nnp == 1 ]] || fail "clamd has NoNewPrivs $nnp"
  ok "clamd uid $uid ($(id -nu "$uid")), CapEff $caps, NoNewPrivs $nnp"
  [[ $(readlink /proc/$pid/ns/net) != $(readlink /proc/1/ns/net) ]] || fail "clamd shares the host's network namespace"
  local ifaces
  ifaces=$(nsenter -t "$pid" -n ip -o link | awk -F': ' '{print $2}' | paste -sd, -)
  [[ $ifaces == lo ]] || fail "clamd's network namespace has interfaces $ifaces"
  ok "clamd's network namespace: $(readlink /proc/$pid/ns/net), interfaces: $ifaces"
  for u in clamav-daemon.service clamav-daemon.socket clamav-milter.service c-icap.service clamd@amavis.service; do
    [[ $(systemctl is-enabled "$u" 2>/dev/null) == masked ]] || fail "$u is not masked"
    systemctl is-active -q "$u" && fail "$u is still active"
  done
  ok "replaced units masked and inactive: clamav-daemon(.socket) clamav-milter c-icap clamd@amavis"
}

doctor() {
  local rc=0
  clamgate doctor > "$E2E/doctor.txt" 2>&1 || rc=$?
  sed 's/^/  /' "$E2E/doctor.txt" | cut -c1-200
  [[ $rc == 0 ]] || fail "clamgate doctor exited $rc"
  grep -Eq '^(WARN|FAIL)' "$E2E/doctor.txt" && fail "a doctor row is not ok"
  ok "clamgate doctor: exit 0, every row ok"
}

reboot_check() {
  wait_boot
  gateway_ready
  engine
  systemctl restart amavis.service
  sleep 5
  systemctl is-active -q clamd@amavis.service && fail "restarting amavis brought clamd@amavis back (trap 2)"
  [[ $(pgrep -xc clamd) == 1 ]] || fail "a second clamd after restarting amavis"
  ok "amavis restarted: clamd@amavis stays down (masked), still one clamd"
}

# update: a new signature the way freshclam writes one (a tmp file, then a
# rename into place); the engine must serve it through all three paths.
update() {
  local marker="CLAMGATE-REHEARSAL-UPDATE-$(date +%s)" start
  printf '%s\n' "$marker" > /srv/www/update.txt
  start=$(date +%s.%N)
  local tmp=/var/lib/clamav/tmp.rehearsal.$$
  printf 'Clamgate.Rehearsal.Update:0:*:%s\n' "$(printf '%s' "$marker" | od -An -tx1 | tr -d ' \n')" > "$tmp"
  chown clamav:clamav "$tmp"
  mv "$tmp" /var/lib/clamav/rehearsal-update.ndb
  local code page
  page=$(mktemp)
  for _ in $(seq 60); do
    code=$(curl -s --max-time 60 -o "$page" -w '%{http_code}' -x http://127.0.0.1:3128 "http://127.0.0.1:8080/update.txt?$RANDOM$RANDOM")
    [[ $code == 403 ]] && break
    sleep 1
  done
  [[ $code == 403 ]] || fail "the new signature was not served within 60 s (squid still gets HTTP $code)"
  echo "  new signature served through squid $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s after the rename"
  grep -q 'Clamgate.Rehearsal.Update' "$page" || fail "the block page does not name the new signature"
  ok "squid: the update marker is blocked as Clamgate.Rehearsal.Update"
  local reply
  reply=$(mail 25 update "update-milter-$$")
  [[ $reply == *"550 "*Clamgate.Rehearsal.Update* ]] || fail "the milter path did not reject the update marker: $reply"
  ok "postfix milter: rejected: ${reply#<* }"
  local since
  since=$(date '+%Y-%m-%d %H:%M:%S'); sleep 1
  reply=$(mail 2525 update "update-amavis-$$")
  retry 120 bash -c "journalctl -u amavis --since '$since' | grep -q 'Blocked INFECTED (Clamgate.Rehearsal.Update'" ||
    fail "amavis did not block the update marker"
  ok "postfix -> amavis: the update marker blocked as Clamgate.Rehearsal.Update"
  rm -f "$page"
}

rollback() {
  clamgate deploy rollback --activate > "$E2E/rollback.txt" 2>&1 || { cat "$E2E/rollback.txt"; fail "deploy rollback --activate"; }
  grep -v '^time=' "$E2E/rollback.txt" | sed 's/^/  /'
  # The rehearsal's own update is not part of the configuration; take it away again.
  rm -f /var/lib/clamav/rehearsal-update.ndb
  retry 120 test -S /run/clamav/clamd.ctl || fail "clamav-daemon's socket is not back"
  retry 120 test -S /run/clamd.amavis/clamd.sock || fail "clamd@amavis is not back"
  retry 60 test -S /var/spool/postfix/clamav/clamav-milter.ctl || fail "clamav-milter is not back"
  retry 60 bash -c '</dev/tcp/127.0.0.1/1344' || fail "c-icap does not listen again"
  pgrep -x clamgate >/dev/null && fail "clamgate still runs"
  ok "the original daemons run again: $(pgrep -xc clamd) clamd, c-icap, clamav-milter; clamgate stopped"
}

compare() {
  config_sums > "$E2E/after.sums"
  if ! diff "$E2E/before.sums" "$E2E/after.sums" > "$E2E/sums.diff"; then
    sed 's/^/  /' "$E2E/sums.diff"
    fail "the configuration differs from before apply"
  fi
  ok "configuration byte-exact: $(wc -l < "$E2E/before.sums") files and links under ${CONF_DIRS[*]}"
}

# Sourced (e2e/package-inside.sh uses these functions): no step.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
case "${1:-}" in
  wait) wait_boot "${2:-}" ;;
  setup) setup ;;
  scans) scans "$2" ;;
  ram) ram "$2" ;;
  apply) apply ;;
  engine) engine ;;
  doctor) doctor ;;
  ready) gateway_ready ;;
  restart) restart ;;
  reboot-check) reboot_check ;;
  update) update ;;
  rollback) rollback ;;
  compare) compare ;;
  *) echo "usage: inside.sh STEP" >&2; exit 2 ;;
esac
