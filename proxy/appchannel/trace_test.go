package appchannel

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"

	"github.com/tandemrun/tandem/proxy/headers"
)

// As daprd, a call that came without trace context reaches an HTTP app
// with the empty span context's traceparent and a gRPC app with an empty
// grpc-trace-bin; a call with trace context keeps it.
func TestEmptyTraceContext(t *testing.T) {
	const tp = "00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01"
	got := make(chan string, 2)
	app := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer app.Close()
	host, port, _ := net.SplitHostPort(app.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	hch, err := NewHTTP(HTTPConfig{Address: host, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	defer hch.Close()
	f := &fakeCallback{reply: &commonv1.InvokeResponse{}}
	gch, err := NewGRPC(GRPCConfig{Port: startCallback(t, f)})
	if err != nil {
		t.Fatal(err)
	}
	defer gch.Close()
	for _, tc := range []struct {
		md       headers.Metadata
		wantHTTP string
		wantBin  bool // a non-empty grpc-trace-bin
	}{
		{headers.Metadata{}, emptyTraceparent, false},
		{headers.Metadata{"traceparent": lv(tp)}, tp, true},
	} {
		resp, err := hch.Invoke(context.Background(), newReq("m", commonv1.HTTPExtension_GET, "", "", tc.md, nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := <-got; h != tc.wantHTTP {
			t.Errorf("HTTP app got traceparent %q, want %q", h, tc.wantHTTP)
		}
		resp, err = gch.Invoke(context.Background(), newReq("m", commonv1.HTTPExtension_GET, "", "", tc.md, nil, 0))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		f.mu.Lock()
		bin, ok := f.md["grpc-trace-bin"]
		f.mu.Unlock()
		if !ok || len(bin) != 1 || (bin[0] != "") != tc.wantBin {
			t.Errorf("gRPC app got grpc-trace-bin %q (present %v), want non-empty %v", bin, ok, tc.wantBin)
		}
	}
}
