package headers

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

func TestToGRPC(t *testing.T) {
	tests := []struct {
		name    string
		md      Metadata
		want    map[string][]string
		missing []string
	}{
		{
			name:    "from http: permanent headers prefixed",
			md:      Metadata{"content-type": lv("application/json"), "accept": lv("*/*"), "x-a": lv("1"), "te": lv("trailers")},
			want:    map[string][]string{"dapr-content-type": {"application/json"}, "dapr-accept": {"*/*"}, "x-a": {"1"}},
			missing: []string{"content-type", "accept", "te"},
		},
		{
			name: "from grpc: kept, reserved dropped",
			md: Metadata{"content-type": lv("application/grpc"), "accept": lv("a"), ":authority": lv("x"),
				"grpc-timeout": lv("1S"), "user-agent": lv("ua"), "x-b-bin": lv("AAE=")},
			want:    map[string][]string{"accept": {"a"}, "x-b-bin": {"\x00\x01"}},
			missing: []string{"content-type", ":authority", "grpc-timeout", "user-agent", "dapr-accept"},
		},
		{
			name:    "bad base64 bin dropped",
			md:      Metadata{"x-bin": lv("!!"), "X-Upper": lv("u")},
			want:    map[string][]string{"x-upper": {"u"}},
			missing: []string{"x-bin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToGRPC(tt.md)
			for k, v := range tt.want {
				if g := got.Get(k); len(g) != len(v) || g[0] != v[0] {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
			for _, k := range tt.missing {
				if _, ok := got[k]; ok {
					t.Errorf("%s present: %v", k, got)
				}
			}
		})
	}
}

func TestToHTTP(t *testing.T) {
	h := http.Header{}
	ToHTTP(Metadata{
		"x-a": lv("1", "2"), "content-type": lv("x"), "content-length": lv("3"), "x-b-bin": lv("AA=="),
		"connection": lv("x-c"), "x-c": lv("gone"), "transfer-encoding": lv("chunked"), "destination-app-id": lv("d"),
		":path": lv("/p"), "grpc-status": lv("0"), "bad header": lv("v"), "x-empty": lv(),
	}, h)
	want := http.Header{"X-A": {"1", "2"}, "Dapr-Path": {"/p"}, "Dapr-Grpc-Status": {"0"}}
	if len(h) != len(want) {
		t.Fatalf("header = %v, want %v", h, want)
	}
	for k, v := range want {
		if g := h.Values(k); len(g) != len(v) || g[0] != v[0] {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// TestToHTTPSharesCapped: the header takes the metadata's lists without
// copying them, capped, so that an append to the header leaves the
// metadata as it was; two names that are one header are joined; the names
// every call carries cost no allocation.
func TestToHTTPSharesCapped(t *testing.T) {
	list := make([]string, 1, 4)
	list[0] = "a"
	md := Metadata{"x-one": {Values: list}, "X-Two": lv("b"), "x-two": lv("c"), "dapr-caller-app-id": lv("caller")}
	h := http.Header{}
	ToHTTP(md, h)
	h.Add("X-One", "added")
	if got := md["x-one"].GetValues(); len(got) != 1 || got[0] != "a" || list[:2][1] != "" {
		t.Errorf("the metadata's list was written into: %v (%q)", got, list[:2])
	}
	if got := h.Values("X-Two"); len(got) != 2 {
		t.Errorf("X-Two = %v, want both values", got)
	}
	if got := h["Dapr-Caller-App-Id"]; len(got) != 1 || got[0] != "caller" {
		t.Errorf("Dapr-Caller-App-Id = %v", got)
	}
	for _, n := range commonHeaders {
		if c := http.CanonicalHeaderKey(n); c != n || CanonicalKey(strings.ToLower(n)) != n {
			t.Errorf("common header %q: canonical %q, looked up %q", n, c, CanonicalKey(strings.ToLower(n)))
		}
	}
	md = Metadata{"dapr-caller-app-id": lv("c"), "dapr-callee-app-id": lv("d"), "traceparent": lv("t")}
	h = make(http.Header, 8)
	if allocs := testing.AllocsPerRun(100, func() { clear(h); ToHTTP(md, h) }); allocs > 0 {
		t.Errorf("%v allocations for Dapr's names, want none", allocs)
	}
}

func TestFromHTTP(t *testing.T) {
	for _, spare := range []int{0, 3, 8} {
		t.Run(fmt.Sprintf("spare=%d", spare), func(t *testing.T) { testFromHTTP(t, spare) })
	}
}

// testFromHTTP converts headers with FromHTTPInto and room for this many
// entries: the metadata is the same whatever the room, and entries use it
// when it is enough (one per header).
func testFromHTTP(t *testing.T, spare int) {
	h := http.Header{
		"Content-Type":      {"a/b"},
		"Content-Length":    {"3"},
		"Connection":        {"keep-alive, X-Gone"},
		"X-Gone":            {"1"},
		"Transfer-Encoding": {"chunked"},
		"Dapr-App-Id":       {"orders"},
		"X-Multi":           {"1", "2"},
		"x-multi":           {"3"},
	}
	md := Metadata{}
	room := make([]internalsv1.ListStringValue, spare)
	FromHTTPInto(h, md, room, "dapr-app-id")
	inRoom := 0
	for _, v := range md {
		for i := range room {
			if v == &room[i] {
				inRoom++
			}
		}
	}
	if enough := spare >= len(h); enough && inRoom != len(md) || !enough && inRoom != 0 {
		t.Errorf("%d of %d entries in the %d given", inRoom, len(md), spare)
	}
	want := map[string][]string{"content-type": {"a/b"}, "x-multi": nil}
	if len(md) != len(want) {
		t.Fatalf("md = %v", md)
	}
	if got := md["x-multi"].GetValues(); len(got) != 3 {
		t.Errorf("x-multi = %v", got)
	}
	if First(md, "content-type") != "a/b" {
		t.Errorf("content-type = %v", md["content-type"])
	}
}

func lv(v ...string) *internalsv1.ListStringValue { return &internalsv1.ListStringValue{Values: v} }
