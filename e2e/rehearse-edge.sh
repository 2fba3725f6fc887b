#!/usr/bin/env bash
# The edge variant rehearsed on the booted Debian 12 host (docs/deploy.md,
# "The edge variant"): a scanning pool outside the host, the Helm chart's
# pod (deploy/helm/clamgate, clamgate and clamd side by side in the image
# deploy/image/build-pool.sh builds) run twice with `podman kube play` as
# internal/chart/pod_test.go runs it, at static addresses on podman's
# bridge, with mutual TLS; the host set up as e2e/rehearse.sh sets it up
# (clamav-daemon, clamd@amavis, clamav-milter, c-icap), then `clamgate
# deploy apply --pool ... --activate` from the Debian package: no clamd
# left on the host, amavis's, the milter's, squid's and clamdscan's scans
# in both pods' audit logs (podman logs) under the host's certificate; one
# pod killed (the other takes over), both killed (errors and tempfails,
# never OK), one started again; rollback byte for byte and the host's
# clamd back. Steps inside the host: e2e/edge-inside.sh.
#
#   e2e/rehearse-edge.sh   (as root; E2E_CACHE, E2E_KEEP=1 as for e2e/rehearse.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
source e2e/lib.sh
requirements
host_image
pool=$work/pool
pool_image=localhost/clamgate-e2e/pool:$$
pods=()

# pool_stop removes the pool's pods and what kube play made for them
# (containers, the volumes standing for the emptyDirs and ConfigMap) and its
# image: only what this script created, by name.
pool_stop() {
  local n
  for n in "${!pods[@]}"; do
    podman kube down "$pool/pod$((n + 1)).yaml" >/dev/null 2>&1 || true
    podman pod rm -f -t 0 "${pods[$n]}" >/dev/null 2>&1 || true
    podman volume rm -f "pool$$-$((n + 1))-clamgate" >/dev/null 2>&1 || true
    for v in clamd-socket gateway-tmp clamd-tmp; do podman volume rm -f "pool$$-$((n + 1))-$v" >/dev/null 2>&1 || true; done
  done
  podman rmi -f "$pool_image" >/dev/null 2>&1 || true
}
# set +e: under errexit, the (exit $rc) that hands cleanup the status would end the trap before it.
trap 'rc=$?; pool_stop; set +e; (exit $rc); cleanup' EXIT

step "clamgate from this tree: its Debian package for the host, the pool's image (deploy/image/build-pool.sh)"
build_package
go build -o "$work/clamgate" ./cmd/clamgate
# The pods' uids read the database and the certificates under $work.
chmod 0711 "$work"
mkdir -p -m 0755 "$work/e2e/db" "$work/tls" "$pool" "$pool/db"
go run ./bench/gensigs -dir "$work/e2e/db" -body 1000 -hashes 1000
cp e2e/inside.sh e2e/edge-inside.sh "$work/e2e/"
cp -r e2e/host/before "$work/e2e/before"
bash deploy/image/build-pool.sh "$pool_image" "$work/clamgate" | sed 's/^/  image /'

step "boot the host"
boot_host
podman cp "$work/e2e" "$name:/root/e2e"
podman cp "$work/clamgate.deb" "$name:/root/clamgate.deb"
inside wait first
hostip=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$name" | awk '{print $1}')
echo "  the host is at $hostip on podman's bridge"

# Two pod IPs on podman's default network (the host's): static, so that the
# pool's certificate can name them before the pods start.
ip1=10.88.$((200 + RANDOM % 50)).$((2 + RANDOM % 250))
ip2=10.88.$((200 + RANDOM % 50)).$((2 + RANDOM % 250))
[[ $ip1 != "$ip2" ]] || ip2=${ip2%.*}.$(( ${ip2##*.} == 2 ? 3 : 2 ))

step "the pool: the chart's pod twice (deploy/helm/clamgate, podman kube play), at $ip1 and $ip2 with mutual TLS"
"$work/clamgate" tls new-ca --dir "$pool/tls" >/dev/null
"$work/clamgate" tls issue --dir "$pool/tls" --name pool --id "ip:$ip1" --id "ip:$ip2" --id dns:pool.rehearsal.test >/dev/null
"$work/clamgate" tls issue --dir "$pool/tls" --name mail --id dns:mail.rehearsal.test >/dev/null
cp "$pool/tls/ca.crt" "$pool/tls/mail.crt" "$pool/tls/mail.key" "$work/tls/"
# Podman 4.3 mounts a Secret's data still base64-encoded: the pods get the
# Secret's three files from a directory, owned and moded as the chart's
# Secret volume makes them (0440, the pod's group), as in
# internal/chart/pod_test.go.
mkdir -m 0755 "$pool/secret"
for pair in tls.crt:pool.crt tls.key:pool.key ca.crt:ca.crt; do
  install -m 0440 -o 0 -g 10000 "$pool/tls/${pair#*:}" "$pool/secret/${pair%%:*}"
done
eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
printf 'Eicar-Test-Signature:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" > "$pool/db/pool.ndb"
chmod 0644 "$pool/db/pool.ndb"
# This machine's runtime and limits for kube play (crun fails on its cgroup layout).
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' > "$pool/containers.conf"
export CONTAINERS_CONF=$pool/containers.conf

# helm: Helm's own module from the module cache (as internal/chart's tests run it), no network.
helm() {
  local bin
  bin=$(cd /tmp && GOPROXY="file://$(go env GOMODCACHE)/cache/download" GOSUMDB=off go run -exec /bin/echo helm.sh/helm/v4/cmd/helm@v4.3.2)
  HELM_CACHE_HOME=$pool/helm HELM_CONFIG_HOME=$pool/helm HELM_DATA_HOME=$pool/helm "$bin" "$@"
}

# pool_pod N IP: the chart's Deployment and ConfigMap rendered as release
# pool$$-N and played by podman at IP. Stagger is off (podman has no API
# server for its Lease); podman 4.3 makes host-wide named volumes of the
# emptyDirs, so they get the release's prefix; the Secret is the directory
# above; and it publishes every containerPort on this machine's own port of
# that number, so the two pods (and internal/chart's test) would collide:
# the ports list goes (the pods are reached at their addresses, as in a
# cluster) and the probes name the metrics port by number.
pool_pod() {
  local rel=pool$$-$1 kube=$pool/pod$1.yaml
  cat > "$pool/values$1.yaml" <<EOF
image: {repository: ${pool_image%:*}, tag: "${pool_image##*:}", pullPolicy: Never}
replicas: 1
autoscaling: {enabled: false}
updater: {enabled: false}
stagger: {enabled: false}
tls: {secretName: $rel-tls}
gateway: {logFormat: text}
database: {sizeMiB: 1, reload: frugal, volume: {hostPath: {path: $pool/db, type: Directory}}}
policies:
  mail: null
  proxies: null
  edges: {tlsIdentities: ["dns:mail.rehearsal.test"], commands: [PING, VERSION, INSTREAM]}
EOF
  helm template "$rel" deploy/helm/clamgate -f "$pool/values$1.yaml" \
    --show-only templates/configmap.yaml --show-only templates/deployment.yaml |
    sed -E "s/name: (clamd-socket|gateway-tmp|clamd-tmp)\b/name: $rel-\1/" |
    perl -0pe "s|secret:\n\s+secretName: $rel-tls\n\s+optional: false\n\s+defaultMode: \S+|hostPath: {path: $pool/secret, type: Directory}|;
      s|\n\s+ports:\n(\s+- name: \S+\n\s+containerPort: \d+\n\s+protocol: TCP\n)+|\n|; s|port: metrics|port: 9310|g" > "$kube"
  if grep -Eq 'secretName:|containerPort:|port: metrics|name: (clamd-socket|gateway-tmp|clamd-tmp)\b' "$kube"; then
    echo "  the rendered pod was not adapted for podman (the chart changed?):"; cat "$kube"; exit 1
  fi
  pods[$1 - 1]=$rel-clamgate-pod-0
  podman kube play --network podman --ip "$2" "$kube" > "$pool/play$1.log" 2>&1 || { cat "$pool/play$1.log"; exit 1; }
  pool_ready "$1" "$2"
}
# pool_ready N IP: the pod's clamgate answers a scan with the host's certificate.
pool_ready() {
  local i
  for i in $(seq 90); do
    pool_scan "$2" 2>/dev/null | grep -q ': OK$' && { echo "  pod $1 (${pods[$1 - 1]}) at $2: ready"; return; }
    sleep 1
  done
  podman logs --tail 20 "${pods[$1 - 1]}-clamgate" 2>&1; podman logs --tail 20 "${pods[$1 - 1]}-clamd" 2>&1
  echo "pool pod $1 did not answer"; exit 1
}
pool_scan() { "$work/clamgate" scan --address "tls:$1:3311" --cert "$pool/tls/mail.crt" --key "$pool/tls/mail.key" --ca "$pool/tls/ca.crt" /etc/hostname; }
pool_pod 1 "$ip1"
pool_pod 2 "$ip2"
pool_scan "$ip1" | sed 's/^/  pod 1: /'
pool_scan "$ip2" | sed 's/^/  pod 2: /'
podman cp "$work/tls" "$name:/root/e2e/tls"

step "before: the host's own clamd (clamav-daemon, clamd@amavis), clamav-milter, c-icap"
inside setup
inside ram before

step "apply: clamgate deploy apply --pool tls:$ip1:3311 --pool tls:$ip2:3311 --activate (the Debian package)"
steps=edge-inside.sh inside apply "tls:$ip1:3311" "tls:$ip2:3311"
steps=edge-inside.sh inside no-clamd

step "apply: amavis, the milter, squid and clamdscan through the pool"
inside scans edge
# pool_log N: pod N's audit log (its clamgate container's log) from line ${2:-1}.
pool_log() { podman logs "${pods[$1 - 1]}-clamgate" 2>&1 | tail -n +"${2:-1}"; }
# pool_audit N: pod N's clamgate logged this host's certificate for an infected and a clean verdict.
pool_audit() {
  local lines
  lines=$(pool_log "$1" | grep 'msg=scan client=edges .*identity=dns:mail.rehearsal.test' || true)
  grep -q 'verdict=infected' <<<"$lines" && grep -q 'verdict=clean' <<<"$lines" ||
    { pool_log "$1" | tail -n 20; echo "  FAIL: pod $1's audit log has no infected and clean verdict for dns:mail.rehearsal.test"; exit 1; }
  echo "  ok: pod $1's audit log (podman logs ${pods[$1 - 1]}-clamgate): $(grep -c . <<<"$lines") scans from identity=dns:mail.rehearsal.test, e.g."
  grep -m1 'verdict=infected' <<<"$lines" | grep -o 'msg=scan.*' | cut -c1-160 | sed 's/^/      /'
}
pool_audit 1
pool_audit 2
step "apply: doctor on the edge"
inside doctor
step "apply: RAM of every scanning process on the edge"
inside ram edge

step "failover: pod 1 killed (podman pod kill), pod 2 takes over"
podman pod kill "${pods[0]}" >/dev/null
mark2=$(($(pool_log 2 | wc -l) + 1))
steps=edge-inside.sh inside failover
pool_log 2 "$mark2" | grep -q 'identity=dns:mail.rehearsal.test' ||
  { echo "  FAIL: pod 2 did not get the scans"; exit 1; }
echo "  ok: pod 2's audit log has them: $(pool_log 2 "$mark2" | grep -c 'msg=scan ') scans"

step "pool down: both pods killed, the clients get errors and tempfails, never OK"
podman pod kill "${pods[1]}" >/dev/null
steps=edge-inside.sh inside pool-down

step "pool back: pod 1 started again (podman pod start)"
podman pod start "${pods[0]}" >> "$pool/play1.log" 2>&1 || { cat "$pool/play1.log"; exit 1; }
pool_ready 1 "$ip1"
steps=edge-inside.sh inside pool-back

step "rollback: clamgate deploy rollback --activate, the host's clamd back"
inside rollback
inside compare
inside scans rollback

step "edge rehearsal passed"
