package proxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tandemrun/tandem/invoke"
)

// appFunc is an AppChannel from a func.
type appFunc func(ctx context.Context, req *invoke.Request) (*invoke.Response, error)

func (f appFunc) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	return f(ctx, req)
}

// TestCountingApp: an invocation counts from the call until its answer's
// body is closed (once, however often it is closed), or until it fails.
func TestCountingApp(t *testing.T) {
	var n atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{})
	fail := false
	app := countingApp{n: &n, next: appFunc(func(ctx context.Context, _ *invoke.Request) (*invoke.Response, error) {
		entered <- struct{}{}
		<-release
		if fail {
			return nil, errors.New("app down")
		}
		return &invoke.Response{Body: io.NopCloser(strings.NewReader("ok"))}, nil
	})}
	type result struct {
		resp *invoke.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := app.Invoke(t.Context(), &invoke.Request{})
		done <- result{resp, err}
	}()
	<-entered
	if got := n.Load(); got != 1 {
		t.Errorf("during the call: %d in flight, want 1", got)
	}
	release <- struct{}{}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("answer not read yet: %d in flight, want 1", got)
	}
	_ = r.resp.Body.Close()
	_ = r.resp.Body.Close()
	if got := n.Load(); got != 0 {
		t.Errorf("after Close (twice): %d in flight, want 0", got)
	}

	fail = true
	go func() {
		_, err := app.Invoke(t.Context(), &invoke.Request{})
		done <- result{nil, err}
	}()
	<-entered
	release <- struct{}{}
	if r := <-done; r.err == nil {
		t.Fatal("want the app's error")
	}
	if got := n.Load(); got != 0 {
		t.Errorf("after a failed call: %d in flight, want 0", got)
	}
}
