#!/usr/bin/env bash
# The project's test command (README, CI): vet, every test, then the race
# detector on the packages that run concurrent code.
set -euo pipefail
cd "$(dirname "$0")"

echo "== go mod tidy -diff"
go mod tidy -diff

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l . | grep -v '^vendor/' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go test"
go test -count=1 ./...

echo "== go test -race (concurrent packages)"
go test -count=1 -race ./batch/... ./serving/... ./actors/... ./supervisor/... ./apps/... ./metrics/... ./internal/loadgen/... ./internal/erldist/... ./internal/safelog/... ./internal/chanbatch/... ./tests/...
