package invoke

import (
	"encoding/hex"
)

// Trace context keys. Dapr carries W3C trace context between sidecars as
// gRPC metadata: both "traceparent" and OpenCensus' binary "grpc-trace-bin"
// (older daprd reads only the latter).
const (
	traceparentKey = "traceparent"
	tracestateKey  = "tracestate"
	traceBinKey    = "grpc-trace-bin"
)

// TraceBinFromParent converts a W3C traceparent
// ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>") to the 29-byte
// OpenCensus binary form: version 0, then field 0 (trace id), field 1
// (span id) and field 2 (options), each preceded by its field number.
func TraceBinFromParent(tp string) ([]byte, bool) {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return nil, false
	}
	b := make([]byte, 29)
	b[0], b[1], b[18], b[27] = 0, 0, 1, 2
	if _, err := hex.Decode(b[2:18], []byte(tp[3:35])); err != nil {
		return nil, false
	}
	if _, err := hex.Decode(b[19:27], []byte(tp[36:52])); err != nil {
		return nil, false
	}
	if _, err := hex.Decode(b[28:29], []byte(tp[53:55])); err != nil {
		return nil, false
	}
	return b, true
}

// TraceParentFromBin is the inverse of TraceBinFromParent.
func TraceParentFromBin(b []byte) (string, bool) {
	if len(b) < 29 || b[0] != 0 || b[1] != 0 || b[18] != 1 || b[27] != 2 {
		return "", false
	}
	out := make([]byte, 0, 55)
	out = append(out, "00-"...)
	out = hex.AppendEncode(out, b[2:18])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[19:27])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[28:29])
	return string(out), true
}
