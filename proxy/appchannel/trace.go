package appchannel

import "encoding/hex"

// W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>") and OpenCensus'
// grpc-trace-bin (version 0; field 0 trace id, 1 span id, 2 options) carry
// the same trace context; an app gets the form its protocol uses.

const traceparentLen = 55

// traceBin converts a traceparent to grpc-trace-bin bytes.
func traceBin(tp string) ([]byte, bool) {
	if len(tp) != traceparentLen || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return nil, false
	}
	b := make([]byte, 29)
	b[18], b[27] = 1, 2
	for _, f := range [...]struct{ dst, src []byte }{
		{b[2:18], []byte(tp[3:35])},
		{b[19:27], []byte(tp[36:52])},
		{b[28:29], []byte(tp[53:55])},
	} {
		if _, err := hex.Decode(f.dst, f.src); err != nil {
			return nil, false
		}
	}
	return b, true
}

// traceparent converts grpc-trace-bin bytes to a traceparent.
func traceparent(b []byte) (string, bool) {
	if len(b) < 29 || b[0] != 0 || b[1] != 0 || b[18] != 1 || b[27] != 2 {
		return "", false
	}
	out := make([]byte, 0, traceparentLen)
	out = append(out, "00-"...)
	out = hex.AppendEncode(out, b[2:18])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[19:27])
	out = append(out, '-')
	out = hex.AppendEncode(out, b[28:29])
	return string(out), true
}
