#!/usr/bin/env bash
# Builds the Coder stand-in as a static binary: build.sh OUTDIR -> OUTDIR/coder-standin
# Needs Go and the Go module proxy. github.com/coder/pq (Coder's lib/pq fork, through the
# replace in go.mod) is unknown to the checksum database: GONOSUMDB skips that lookup only;
# go.sum still pins its hash.
set -euo pipefail
out="${1:?usage: build.sh OUTDIR}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/coder/pq"
export CGO_ENABLED=0
cd "$here"
# go.mod and go.sum are complete: no -mod=mod needed (GOFLAGS from the caller is kept).
nice -n "${BUILD_NICE:-19}" go build -trimpath -ldflags "-s -w" -o "$out/coder-standin" .
echo "built $out/coder-standin"
