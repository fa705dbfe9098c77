#!/usr/bin/env bash
# build-images.sh: the control plane's and the sidecar's container images, without Docker. Builds the static
# release binaries for linux/<arch> and writes one OCI image tarball per binary into images/:
#
#   scripts/build-images.sh [amd64|arm64] [tag]
#   kind load image-archive images/sentry-0.1.0-linux-amd64.tar     # or docker load -i / ctr import
#
# The tag defaults to the chart's appVersion, which is what the chart deploys.
set -euo pipefail
arch="${1:-$(go env GOARCH)}"
cd "$(dirname "$0")/.."
GOOS=linux GOARCH="$arch" bash scripts/build.sh "bin/linux-$arch" >/dev/null
go run ./cmd/tandem k8s images --bin-dir "bin/linux-$arch" --arch "$arch" --out images ${2:+--tag "$2"}
