#!/usr/bin/env bash
# Builds Dapr's real daprd (v1.18.2, stable components) from the Go module
# proxy into ~/.cache/tandem/daprd-1.18.2, for the interoperability test
# (test/e2e/daprd_interop_test.go). It takes 10-40 minutes and ~3 GB of module
# downloads the first time; the test skips when the binary is absent.
set -euo pipefail
out="${TANDEM_DAPRD:-$HOME/.cache/tandem/daprd-1.18.2}"
if [ -x "$out" ]; then echo "daprd: already built at $out"; exit 0; fi
mod="$(go env GOMODCACHE)/github.com/dapr/dapr@v1.18.2"
if [ ! -d "$mod" ]; then (cd "$(dirname "$0")/.." && go mod download github.com/dapr/dapr@v1.18.2); fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$mod" "$work/src" && chmod -R u+w "$work/src"
mkdir -p "$(dirname "$out")"
echo "daprd: building v1.18.2 (this takes a while)"
(cd "$work/src" && go build -tags stablecomponents -o "$out" ./cmd/daprd)
echo "daprd: built $out"
