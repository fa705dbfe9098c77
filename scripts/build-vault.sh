#!/usr/bin/env bash
# Builds HashiCorp Vault from the Go module proxy into ~/.cache/tandem/vault/<version>/vault, for the tests of the
# secretstores.hashicorp.vault component (components/secretstores/vault, internal/vaulttest, test/e2e), which start
# `vault server -dev`. Prints the binary's path on stdout; progress goes to stderr. Idempotent: a built binary is
# reused at once.
#
# Vault's go.mod replaces its api and sdk submodules with folders its module zip lacks, so the build runs in a
# throw-away module that requires github.com/hashicorp/vault (whose replaces then don't apply) and gets the published
# api and sdk its go.mod names. For v1.21.4 those do not quite match: the release was built with an in-tree sdk
# that no published sdk matches (v0.21.0 gives framework.Backend's ActivationFunc a third argument, the flag's name;
# the in-tree keysutil's RestorePolicy returns one more value), and the sdk at the release's commit is not on the
# proxy. The build adapts Vault's few uses of those in a copy of the module source (below); nothing else changes.
#
# Measured on 2 shared cores: a cold run took 8 minutes of module downloads (477 s) and 15 of compiling with an
# empty build cache (916 s, under nice and a load of 6-11); with both caches warm it takes about a minute, and a built
# binary (~350 MB) is reused at once.
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
export GOFLAGS=-mod=mod
go get "github.com/hashicorp/vault@$version" >&2
echo "vault: fetched in $(( $(date +%s) - start ))s" >&2

src="$(go list -m -f '{{.Dir}}' github.com/hashicorp/vault)"
cp -r "$src" "$work/vault-src"
chmod -R u+w "$work/vault-src"
# edit_src FILE PERL-SUBSTITUTION: applies one edit, and fails the build when the text it expects is not there.
edit_src() { perl -0pi -e "$2 or die \"build-vault.sh: $1 does not read as expected\\n\"" "$work/vault-src/$1"; }
case "$version" in
v1.21.4)
	edit_src vault/identity_store.go \
		's/ActivationFunc: iStore\.activateDeduplication,/ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },/'
	edit_src vault/logical_system_activation_flags.go \
		's/b\.idStoreBackend\.ActivationFunc\(ctx, nil\)/b.idStoreBackend.ActivationFunc(ctx, nil, "")/'
	# The in-tree keysutil's RestorePolicy also returns the restored key's name, which transit only records as an
	# (Enterprise) observation; the published one returns only the error. The name is the one requested.
	edit_src builtin/logical/transit/path_restore.go \
		's/restoredKeyName, err := b\.lm\.RestorePolicy\(ctx, req\.Storage, keyName, backupB64, force\)/restoredKeyName := keyName\n\terr := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)/'
	;;
esac
go mod edit -replace "github.com/hashicorp/vault=./vault-src"

echo "vault: building" >&2
go build -trimpath -ldflags="-s -w" -o "$out.tmp" github.com/hashicorp/vault >&2
mv "$out.tmp" "$out"
echo "vault: built $out in $(( $(date +%s) - start ))s" >&2
echo "$out"
