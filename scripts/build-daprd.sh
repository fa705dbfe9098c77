#!/usr/bin/env bash
# Builds Dapr's real daprd (v1.18.2, stable components and crypto.dapr.localstorage) from the Go module
# proxy into ~/.cache/tandem/daprd-1.18.2, for the interoperability test
# (test/e2e/daprd_interop_test.go). It takes 10-40 minutes and ~3 GB of module
# downloads the first time; the test skips when the binary is absent.
set -euo pipefail
out="${TANDEM_DAPRD:-$HOME/.cache/tandem/daprd-1.18.2}"
# Stable components, plus the local-storage crypto provider the crypto interoperability test uses (Dapr builds it
# only with allcomponents or this tag).
tags="stablecomponents,crypto_localstorage"
if [ -x "$out" ] && [ "$(cat "$out.tags" 2>/dev/null)" = "$tags" ]; then echo "daprd: already built at $out"; exit 0; fi
mod="$(go env GOMODCACHE)/github.com/dapr/dapr@v1.18.2"
if [ ! -d "$mod" ]; then (cd "$(dirname "$0")/.." && go mod download github.com/dapr/dapr@v1.18.2); fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$mod" "$work/src" && chmod -R u+w "$work/src"
mkdir -p "$(dirname "$out")"
echo "daprd: building v1.18.2 (this takes a while)"
(cd "$work/src" && go build -tags "$tags" -o "$out" ./cmd/daprd)
echo "$tags" > "$out.tags"
echo "daprd: built $out"
