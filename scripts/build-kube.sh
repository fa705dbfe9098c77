#!/usr/bin/env bash
# build-kube.sh: builds the Kubernetes API server, kubectl and etcd from the Go module proxy, for the tests that need a
# real API server (controller-runtime's envtest), and caches them.
#
#   scripts/build-kube.sh          # prints the folder that holds kube-apiserver, kubectl and etcd
#
# The binaries go to TANDEM_KUBE_BIN (default ~/.cache/tandem/kube/<versions>); a second run finds them and prints
# the folder at once. A cold build takes 8–18 minutes on 2 cores. Point envtest at the result with
#   export KUBEBUILDER_ASSETS=$(scripts/build-kube.sh)
#
# k8s.io/kubernetes is not meant to be a dependency: its go.mod points every k8s.io/<staging> module at a folder in
# its own tree. So this builds it in a throw-away module that replaces each of them with the published v0.<minor>.
set -euo pipefail

KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.3
BIN="${TANDEM_KUBE_BIN:-$HOME/.cache/tandem/kube/$KUBE_VERSION-etcd-$ETCD_VERSION}"

have() { [[ -x $BIN/kube-apiserver && -x $BIN/kubectl && -x $BIN/etcd ]]; }
if have; then echo "$BIN"; exit 0; fi

log() { echo "build-kube: $*" >&2; }
mkdir -p "$BIN"
exec 9>"$BIN/.lock" && flock 9 # one build at a time
if have; then echo "$BIN"; exit 0; fi

work=$(mktemp -d /tmp/build-kube.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0

log "building etcd $ETCD_VERSION"
mkdir -p "$work/etcd" && cd "$work/etcd"
go mod init build-etcd >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
go build -trimpath -ldflags="-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$BIN/etcd.tmp" "$BIN/etcd"

log "reading k8s.io/kubernetes $KUBE_VERSION's staging modules"
mkdir -p "$work/kube" && cd "$work/kube"
go mod init build-kube >/dev/null 2>&1
modfile=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f $modfile ]] || { log "cannot download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
mapfile -t staging < <(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk '{print $1}' | sort -u)
[[ ${#staging[@]} -gt 10 ]] || { log "found only ${#staging[@]} staging modules in $modfile"; exit 1; }
args=()
for m in "${staging[@]}"; do args+=("-replace=$m=$m@$STAGING_VERSION"); done
go mod edit "${args[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION"
log "resolving ${#staging[@]} staging modules at $STAGING_VERSION"
go mod tidy -e >/dev/null 2>&1 || true
go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION" >&2
for cmd in kube-apiserver kubectl; do
  log "building $cmd $KUBE_VERSION (the long part)"
  go build -trimpath -ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
    -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
  mv "$BIN/$cmd.tmp" "$BIN/$cmd"
done
have || { log "a binary is missing from $BIN"; exit 1; }
log "done"
echo "$BIN"
