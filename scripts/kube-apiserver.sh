#!/usr/bin/env bash
# Builds a real kube-apiserver from the Go module proxy (k8s.io/kubernetes,
# its staging modules replaced by the published k8s.io/* of the same minor
# release, matching the k8s.io/api in go.mod) into a cache directory, once,
# and prints the binary's path. Tests that need a real API server (the
# Lease of [database] stagger, a server-side dry-run of the Helm chart)
# call it; a cached run only prints the path.
#
#   scripts/kube-apiserver.sh            # → /var/cache/clamgate-kube/kube-apiserver-v1.37.2
#   KUBE_VERSION=v1.37.2 KUBE_CACHE=/tmp/kc scripts/kube-apiserver.sh
#
# It runs with Debian's etcd-server 3.4 (testenv.StartKubeAPI passes
# --endpoint-reconciler-type none so that it may advertise 127.0.0.1).
set -euo pipefail

version=${KUBE_VERSION:-v1.37.2}
cache=${KUBE_CACHE:-/var/cache/clamgate-kube}
bin=$cache/kube-apiserver-$version
if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
# The staging modules' published versions: v0.MINOR.PATCH for v1.MINOR.PATCH.
staging=v0.${version#v1.}
printf 'module kubeapiserverbuild\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n' "$version" >go.mod
GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" >mod.json
gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' mod.json)
{
	echo 'replace ('
	sed -n 's|^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*|\t\1 => \1 '"$staging"'|p' "$gomod"
	echo ')'
} >>go.mod
echo "kube-apiserver.sh: building k8s.io/kubernetes $version (staging $staging) into $cache; this takes minutes" >&2
GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$version" >&2
GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin.tmp" "$bin"
echo "$bin"
