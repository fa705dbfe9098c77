package headers

import (
	"encoding/base64"
	"strings"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/invoke"
)

// ToGRPC converts internal metadata to outgoing gRPC metadata as
// Dapr does for a gRPC app: "-bin" values are base64-decoded; when the
// request came from HTTP (its content-type is not application/grpc) the
// standard HTTP request headers (Accept, Content-Type, ...) get a "dapr-"
// prefix so they do not clash with gRPC's own; destination-app-id, hop-by-hop
// names and names or values gRPC cannot carry are dropped. A traceparent
// without grpc-trace-bin also yields grpc-trace-bin.
func ToGRPC(md Metadata) metadata.MD {
	out := make(metadata.MD, len(md)+1)
	fromHTTP := !strings.HasPrefix(First(md, contentTypeKey), "application/grpc")
	for k, lv := range md {
		name := lowerASCII(k)
		if name == destinationKey || IsHopByHop(name) || name == contentLengthKey && !fromHTTP {
			continue
		}
		if fromHTTP && isPermanentHTTPHeader(name) {
			name = "dapr-" + name
		}
		if !validGRPCKey(name) {
			continue
		}
		if strings.HasSuffix(name, binSuffix) {
			for _, v := range lv.GetValues() {
				if b, ok := DecodeBin(v); ok {
					out[name] = append(out[name], string(b))
				}
			}
			continue
		}
		for _, v := range lv.GetValues() {
			if validGRPCValue(v) {
				out[name] = append(out[name], v)
			}
		}
	}
	if _, ok := out[traceBinKey]; !ok {
		if bin, ok := invoke.TraceBinFromParent(First(md, traceparentKey)); ok {
			out[traceBinKey] = []string{string(bin)}
		}
	}
	return out
}

// FromGRPC converts gRPC metadata to internal metadata, base64
// encoding "-bin" values as Dapr does.
func FromGRPC(md metadata.MD) Metadata {
	out := make(Metadata, len(md))
	for k, vv := range md {
		if strings.HasSuffix(k, binSuffix) {
			enc := make([]string, len(vv))
			for i, v := range vv {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			vv = enc
		}
		out[k] = &internalsv1.ListStringValue{Values: vv}
	}
	return out
}

// isPermanentHTTPHeader reports whether a lower-case name is one of the
// IANA permanent request headers Dapr renames for gRPC apps.
func isPermanentHTTPHeader(name string) bool {
	switch name {
	case "accept", "accept-charset", "accept-language", "accept-ranges",
		"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
		"cache-control", "content-type", "content-length", "cookie", "date", "expect",
		"from", "host", "if-match", "if-modified-since", "if-none-match",
		"if-schedule-tag-match", "if-unmodified-since", "max-forwards", "origin",
		"pragma", "referer", "via", "warning":
		return true
	}
	return false
}

// validGRPCKey reports whether name is a legal gRPC metadata key and not
// one gRPC manages itself.
func validGRPCKey(name string) bool {
	if name == "" || name[0] == ':' || name == "user-agent" || name == "te" ||
		name == "content-type" || (strings.HasPrefix(name, "grpc-") && name != traceBinKey) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validGRPCValue reports whether v is printable ASCII, as gRPC requires of
// non-binary metadata.
func validGRPCValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
