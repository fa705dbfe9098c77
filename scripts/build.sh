#!/usr/bin/env bash
# Release build of the binaries into ./bin (or the folder given as $1); GOOS/GOARCH from the environment pick the
# target (GOOS=linux GOARCH=arm64 scripts/build.sh bin/linux-arm64 for the arm64 images):
#   -tags=grpcnotrace  leaves out golang.org/x/net/trace: its html/template keeps
#                      every exported method of every type alive in the linker
#                      (~11 MiB of tandemd, and the pages RSS that come with it)
#   -ldflags="-s -w"   no symbol table, no DWARF (panics still name functions)
#   -trimpath          no local paths in the binary
#   CGO_ENABLED=0      a static binary that runs on any Linux (as Dapr's are)
# test/e2e/framework.ReleaseFlags holds the same flags: the tests run this build.
set -euo pipefail
out="${1:-bin}"
cd "$(dirname "$0")/.."
mkdir -p "$out"
pkgs=()
for b in tandemd sentry tandem operator injector placement scaler; do [[ -d cmd/$b ]] && pkgs+=("./cmd/$b"); done
CGO_ENABLED=0 go build -trimpath -tags=grpcnotrace -ldflags="-s -w" -o "$out/" "${pkgs[@]}"
ls -l "${pkgs[@]/#.\/cmd/$out}"
