package headers

import (
	"encoding/base64"
	"net/http"
	"strings"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// Metadata is Dapr's internal metadata map: lower-cased header or gRPC
// metadata names to their values. Values of "-bin" keys are base64.
type Metadata = map[string]*internalsv1.ListStringValue

// Header and metadata names with special handling.
const (
	contentTypeKey   = "content-type"
	contentLengthKey = "content-length"
	destinationKey   = "destination-app-id"
	traceparentKey   = "traceparent"
	tracestateKey    = "tracestate"
	traceBinKey      = "grpc-trace-bin"
	binSuffix        = "-bin"
)

// IsHopByHop reports whether a lower-case header name is hop-by-hop (RFC
// 7230 section 6.1, plus HTTP/2's and proxy authentication headers, as in
// Dapr): such headers are never forwarded.
func IsHopByHop(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding",
		"upgrade", "http2-settings", "te", "trailer",
		"proxy-authorization", "proxy-authenticate":
		return true
	}
	return false
}

// connectionTokens returns the lower-cased names a Connection header
// nominates as hop-by-hop, or nil.
func connectionTokens(values []string) map[string]struct{} {
	if len(values) == 0 {
		return nil
	}
	m := make(map[string]struct{})
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				m[strings.ToLower(tok)] = struct{}{}
			}
		}
	}
	return m
}

// FromHTTP copies HTTP headers into metadata with lower-cased names,
// dropping hop-by-hop headers (and those the Connection header names),
// Content-Length (the body's size travels separately) and the names in
// skip (lower-case; e.g. "dapr-app-id"). Values are shared, not copied.
func FromHTTP(h http.Header, md Metadata, skip ...string) {
	FromHTTPInto(h, md, nil, skip...)
}

// FromHTTPInto is FromHTTP with room for the entries: spare backs them when
// it holds one per header (it is part of the caller's own allocation), and
// one new array does otherwise.
func FromHTTPInto(h http.Header, md Metadata, spare []internalsv1.ListStringValue, skip ...string) {
	conn := connectionTokens(h["Connection"])
	// One backing array for all entries: one allocation, not one per header.
	lvs := spare
	if len(lvs) < len(h) {
		lvs = make([]internalsv1.ListStringValue, len(h))
	}
	used := 0
outer:
	for k, vv := range h {
		if len(vv) == 0 {
			continue
		}
		name := lowerASCII(k)
		if name == contentLengthKey || IsHopByHop(name) {
			continue
		}
		if _, ok := conn[name]; ok {
			continue
		}
		for _, s := range skip {
			if name == s {
				continue outer
			}
		}
		if cur, ok := md[name]; ok {
			// Two spellings of one header ("X-A" and "x-a") merge.
			cur.Values = append(cur.Values, vv...)
			continue
		}
		lv := &lvs[used]
		used++
		lv.Values = vv
		md[name] = lv
	}
}

// ToHTTP adds metadata entries to HTTP headers with Dapr's rules:
// hop-by-hop (and Connection-nominated) names, content-type (set it from
// the message's content type), content-length, destination-app-id and
// binary "-bin" entries are dropped; gRPC pseudo-headers (":authority") and
// "grpc-*" names get a "dapr-" prefix so they cannot confuse HTTP.
func ToHTTP(md Metadata, h http.Header) {
	var conn map[string]struct{}
	if c, ok := md["connection"]; ok {
		conn = connectionTokens(c.GetValues())
	}
	for k, lv := range md {
		vals := lv.GetValues()
		if len(vals) == 0 {
			continue
		}
		name := lowerASCII(k)
		if _, ok := conn[name]; ok {
			continue
		}
		name, ok := HTTPName(name)
		if !ok {
			continue
		}
		key := CanonicalKey(name)
		if cur, ok := h[key]; ok {
			h[key] = append(cur, vals...)
		} else {
			// The metadata's own list, capped: an append to the header
			// copies it first, and neither side writes into it.
			h[key] = vals[:len(vals):len(vals)]
		}
	}
}

// HTTPName is the header name, lower-case, that ToHTTP gives a lower-case
// metadata name; ok is false for the names it drops: hop-by-hop ones,
// content-type, content-length, destination-app-id, binary "-bin" ones and
// those that are no HTTP token. (ToHTTP also drops the names a connection
// entry nominates, which a name alone cannot tell.)
func HTTPName(name string) (string, bool) {
	switch name {
	case contentTypeKey, contentLengthKey, destinationKey:
		return "", false
	}
	if strings.HasSuffix(name, binSuffix) || IsHopByHop(name) {
		return "", false
	}
	name = daprPrefixReserved(name)
	if !validHeaderName(name) {
		return "", false
	}
	return name, true
}

// CanonicalKey is http.CanonicalHeaderKey of a lower-case name, without
// allocating for the common ones.
func CanonicalKey(name string) string {
	if k, ok := commonCanonical[name]; ok {
		return k
	}
	return http.CanonicalHeaderKey(name)
}

// daprPrefixReserved renames gRPC's reserved names for HTTP, as Dapr does.
func daprPrefixReserved(name string) string {
	switch {
	case name == ":method" || name == ":scheme" || name == ":path" || name == ":authority":
		return "dapr-" + name[1:]
	case strings.HasPrefix(name, "grpc-"):
		return "dapr-" + name
	}
	return name
}

// validHeaderName reports whether name is an HTTP token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// commonHeaders are frequent header names, canonical: commonLower maps
// them to their lower-case form and commonCanonical back, so converting
// them either way does not allocate on the invocation hot path.
var commonHeaders = []string{
	"Accept", "Accept-Encoding", "Accept-Language", "Authorization",
	"Cache-Control", "Content-Type", "Content-Length", "Content-Encoding",
	"Cookie", "Date", "Etag", "Expect", "If-Match", "If-None-Match",
	"Last-Modified", "Location", "Origin", "Referer", "Server", "Set-Cookie",
	"Traceparent", "Tracestate", "Baggage", "User-Agent", "Vary", "Forwarded",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id",
	"Grpc-Trace-Bin", "Dapr-App-Id", "Dapr-Api-Token", "Dapr-Caller-App-Id",
	"Dapr-Caller-Namespace", "Dapr-Callee-App-Id", "Dapr-Reentrancy-Id",
}

var commonLower, commonCanonical = func() (lower, canonical map[string]string) {
	lower, canonical = map[string]string{}, map[string]string{}
	for _, n := range commonHeaders {
		l := strings.ToLower(n)
		lower[n], canonical[l] = l, n
	}
	return lower, canonical
}()

// lowerASCII lower-cases s without allocating when it already is or is a
// common header name.
func lowerASCII(s string) string {
	if l, ok := commonLower[s]; ok {
		return l
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// First returns the first value of a metadata entry, or "".
func First(md Metadata, name string) string {
	if lv, ok := md[name]; ok && len(lv.GetValues()) > 0 {
		return lv.GetValues()[0]
	}
	return ""
}

// DecodeBin decodes a "-bin" metadata value (base64, padded or not).
func DecodeBin(v string) ([]byte, bool) {
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		return b, true
	}
	if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
		return b, true
	}
	return nil, false
}
