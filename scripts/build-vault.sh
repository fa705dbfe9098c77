#!/usr/bin/env bash
# Builds HashiCorp Vault from the Go module proxy into ~/.cache/tandem/vault/<version>/vault, for the
# secretstores.hashicorp.vault component's test (components/secretstores/vault), which starts `vault server -dev`.
# Vault's own go.mod replaces its api and sdk submodules with local folders that its module zip lacks, so the build
# runs in a throw-away module that requires github.com/hashicorp/vault (whose replaces then don't apply). The first
# run downloads a few GB of modules and takes a long time; later runs print the cached path at once.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail
version="${TANDEM_VAULT_VERSION:-v1.21.4}"
out="${TANDEM_VAULT:-$HOME/.cache/tandem/vault/$version/vault}"
if [ -x "$out" ]; then echo "vault: already built at $out" >&2; echo "$out"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
start=$(date +%s)
echo "vault: fetching github.com/hashicorp/vault@$version and its dependencies (this takes a while)" >&2
cd "$work"
go mod init tandem.local/buildvault >/dev/null 2>&1
GOFLAGS=-mod=mod go get "github.com/hashicorp/vault@$version" >&2
echo "vault: fetched in $(( $(date +%s) - start ))s; building" >&2
GOFLAGS=-mod=mod go build -trimpath -o "$out.tmp" github.com/hashicorp/vault >&2
mv "$out.tmp" "$out"
echo "vault: built $out in $(( $(date +%s) - start ))s" >&2
echo "$out"
