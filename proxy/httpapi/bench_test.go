package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// nopInvoker answers every call with a fixed empty 200, allocating nothing.
type nopInvoker struct{ resp invoke.Response }

func (n *nopInvoker) Invoke(context.Context, string, *invoke.Request) (*invoke.Response, error) {
	return &n.resp, nil
}

type nopBody struct{}

func (nopBody) Read([]byte) (int, error) { return 0, io.EOF }
func (nopBody) Close() error             { return nil }

// discardWriter is a minimal ResponseWriter that keeps its header map.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkInvokeRoute measures the handler's own cost for the hot path
// /v1.0/invoke/{app}/method/{method} with typical headers.
func BenchmarkInvokeRoute(b *testing.B) {
	inv := &nopInvoker{resp: invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status:  &internalsv1.Status{Code: 200},
			Message: &commonv1.InvokeResponse{ContentType: "application/json"},
		},
		Body: nopBody{},
	}}
	h := New(Config{Invoker: inv, MaxRequestBodySize: 4 << 20})
	u, _ := url.Parse("http://127.0.0.1:3500/v1.0/invoke/orders/method/items/42?x=1")
	hdr := http.Header{
		"Content-Type":    {"application/json"},
		"User-Agent":      {"bench"},
		"Accept":          {"*/*"},
		"Accept-Encoding": {"gzip"},
		"Traceparent":     {"00-4bf824d1d1a5b6a65c810a7f0fb54000-98c63871e0a6e7c0-01"},
	}
	req := &http.Request{Method: http.MethodPost, URL: u, Header: hdr, Body: http.NoBody, ContentLength: 0}
	req = req.WithContext(context.Background())
	w := &discardWriter{h: make(http.Header, 4)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkInvokeRouteHTTP is the same through a real loopback server.
func BenchmarkInvokeRouteHTTP(b *testing.B) {
	inv := &nopInvoker{resp: invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}},
		Body:    nopBody{},
	}}
	srv := httptest.NewServer(New(Config{Invoker: inv}))
	defer srv.Close()
	client := srv.Client()
	target := srv.URL + "/v1.0/invoke/orders/method/items/42"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(target)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
