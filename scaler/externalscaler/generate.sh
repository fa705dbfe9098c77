#!/usr/bin/env bash
# Regenerates externalscaler.pb.go and externalscaler_grpc.pb.go (go generate ./scaler).
#
# externalscaler.proto is KEDA's published external scaler protocol, unchanged:
# github.com/kedacore/keda/v2 v2.20.2, pkg/scalers/externalscaler/externalscaler.proto
# (Apache-2.0). The keda module is not a dependency: it needs Go 1.27 from v2.21 on and
# drags its whole module graph (cloud SDKs, Kubernetes) into go.sum for one small package.
#
# Tools, all from the Go module proxy: buf v1.75.0 (the proto compiler),
# protoc-gen-go v1.36.12 (google.golang.org/protobuf, as in go.mod) and protoc-gen-go-grpc v1.6.2.
set -euo pipefail
cd "$(dirname "$0")"
bin="${TANDEM_TOOLS_BIN:-$HOME/.cache/bin}"
[ -x "$bin/buf" ] || GOBIN="$bin" go install github.com/bufbuild/buf/cmd/buf@v1.75.0
[ -x "$bin/protoc-gen-go" ] || GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
[ -x "$bin/protoc-gen-go-grpc" ] || GOBIN="$bin" go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
pkg=github.com/tandemrun/tandem/scaler/externalscaler
template=$(cat <<JSON
{"version":"v2","plugins":[
 {"local":"$bin/protoc-gen-go","out":".","opt":["paths=source_relative","Mexternalscaler.proto=$pkg"]},
 {"local":"$bin/protoc-gen-go-grpc","out":".","opt":["paths=source_relative","Mexternalscaler.proto=$pkg"]}
]}
JSON
)
"$bin/buf" generate --template "$template" --path externalscaler.proto .
