#!/usr/bin/env bash
# Installs the test dependencies (real clamd and real clients) and runs the
# whole suite: vet, unit and integration tests, then each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
export PATH="$PATH:/usr/local/go/bin"

go vet ./...
go test -count=1 -timeout 15m ./...

fuzztime=${FUZZTIME:-10s}
for target in FuzzReadCommand FuzzChunkReader FuzzServeConn; do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ./internal/clamdproto/ | tail -n 1
done
