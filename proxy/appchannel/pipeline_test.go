package appchannel

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
)

// testPipeline rewrites the path, upper-cases the request body and tags
// the answer, or answers itself when the path is /refuse.
type testPipeline struct{ off atomic.Bool }

func (p *testPipeline) Empty() bool { return p.off.Load() }

func (p *testPipeline) Wrap(final http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusTeapot)
			_, _ = io.WriteString(w, "refused")
			return
		}
		r.URL.Path = strings.Replace(r.URL.Path, "old", "new", 1)
		b, _ := io.ReadAll(r.Body)
		b = bytes.ToUpper(b)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		w.Header().Set("X-Piped", "1")
		final.ServeHTTP(w, r)
	})
}

func TestPipelineAroundAppCalls(t *testing.T) {
	srv, seenCh := fakeApp(t, (*httptest.Server).Start, func(w http.ResponseWriter) {
		w.Header().Set("X-App", "1")
		_, _ = io.WriteString(w, "answer")
	})
	host, port := portOf(t, srv)
	p := &testPipeline{}
	ch, err := NewHTTP(HTTPConfig{Address: host, Port: port, Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	call := func(method string) (int, http.Header, string, error) {
		resp, err := ch.Invoke(context.Background(), newReq(method, commonv1.HTTPExtension_POST, "", "text/plain", nil, strings.NewReader("hello"), 5))
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		h := http.Header{}
		for k, v := range resp.Message.GetHeaders() {
			h[http.CanonicalHeaderKey(k)] = v.GetValues()
		}
		return int(resp.Message.GetStatus().GetCode()), h, string(b), nil
	}
	code, h, body, err := call("path/old")
	if err != nil {
		t.Fatal(err)
	}
	s := <-seenCh
	if code != 200 || body != "answer" || h.Get("X-Piped") != "1" || h.Get("X-App") != "1" {
		t.Fatalf("answer %d %q %v", code, body, h)
	}
	if s.path != "/path/new" || string(s.body) != "HELLO" {
		t.Fatalf("the app saw %s %q", s.path, s.body)
	}
	// A middleware that answers itself: the app is not called.
	if code, _, body, err := call("refuse"); err != nil || code != http.StatusTeapot || body != "refused" {
		t.Fatalf("refused: %d %q %v", code, body, err)
	}
	select {
	case s := <-seenCh:
		t.Fatalf("the app was called: %+v", s)
	default:
	}
	// An empty pipeline is bypassed.
	p.off.Store(true)
	if _, h, _, err := call("path/old"); err != nil || h.Get("X-Piped") != "" {
		t.Fatalf("empty pipeline: %v %v", h, err)
	}
	if s := <-seenCh; s.path != "/path/old" {
		t.Fatalf("empty pipeline: the app saw %s", s.path)
	}
	// The app going away is an error, as without a pipeline.
	p.off.Store(false)
	srv.Close()
	if _, _, _, err := call("x"); err == nil || !strings.Contains(err.Error(), "call app") {
		t.Fatalf("app down: %v", err)
	}
}
