#!/usr/bin/env bash
# Installs the test dependencies (real clamd and real clients) and runs the
# whole suite: vet, unit and integration tests, then each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
export PATH="$PATH:/usr/local/go/bin"

go vet ./...
go test -count=1 -timeout 15m ./...
# The concurrent core again under the race detector (the slow end-to-end
# packages are left out to keep CI short).
go test -race -count=1 -timeout 10m ./internal/scan/ ./internal/clamdproto/ ./internal/icap/ \
  ./internal/milter/ ./internal/sigdb/ ./internal/policy/ ./internal/listen/ ./internal/clamd/
# Live reload swaps listeners, routes and limits under running scans: its
# two end-to-end tests (a few seconds) under the race detector too.
go test -race -count=1 -timeout 5m -run '^TestConfigReload' ./internal/gateway/

# The Debian package: built, lintian-clean, installed, verified, purged.
bash scripts/test-package.sh

# Every fuzz target of every package (each parser of client bytes has one).
fuzztime=${FUZZTIME:-10s}
grep -rl --include='*_test.go' '^func Fuzz' internal | while read -r file; do
  for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "fuzz $target ($(dirname "$file"))"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$(dirname "$file")/" | tail -n 1
  done
done
