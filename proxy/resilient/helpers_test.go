package resilient

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/resiliency"
)

// policies builds a Policies for app "me" from a Resiliency spec body.
func policies(t testing.TB, spec string, opts ...resiliency.BuildOption) *Policies {
	t.Helper()
	opts = append(opts, resiliency.WithRand(func() float64 { return 0.5 }))
	p := NewPolicies("me", nil, opts...)
	if spec == "" {
		return p
	}
	if _, err := p.Apply([]components.Document{doc("r.yaml", spec)}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return p
}

func doc(name, spec string) components.Document {
	raw := "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: " + strings.TrimSuffix(name, ".yaml") +
		"\nspec:\n" + indent(spec)
	return components.Document{Kind: "Resiliency", Name: name, Source: name, Raw: []byte(raw)}
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// request builds an invocation request with body (nil: none); streamed
// gives it an unknown length.
func request(body []byte, streamed bool) *invoke.Request {
	r := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{Method: "m",
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST}},
		},
		ContentLength: int64(len(body)),
	}
	if body != nil {
		r.Body = bytes.NewReader(body)
	}
	if streamed {
		r.ContentLength = -1
	}
	return r
}

// response is an HTTP app's answer.
func response(code int, body string) *invoke.Response {
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: int32(code)}},
		Body:    &trackedBody{Reader: strings.NewReader(body)},
	}
}

type trackedBody struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (b *trackedBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// fakeInvoker answers call n (1-based) with script(ctx, n, body read).
type fakeInvoker struct {
	script func(ctx context.Context, n int, body []byte) (*invoke.Response, error)

	mu     sync.Mutex
	calls  int
	bodies []string
	resps  []*invoke.Response
}

func (f *fakeInvoker) Invoke(ctx context.Context, _ string, req *invoke.Request) (*invoke.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.bodies = append(f.bodies, string(body))
	f.mu.Unlock()
	resp, err := f.script(ctx, n, body)
	f.mu.Lock()
	f.resps = append(f.resps, resp)
	f.mu.Unlock()
	return resp, err
}

func (f *fakeInvoker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// statuses answers with the codes in order, the last one repeating.
func statuses(codes ...int) func(context.Context, int, []byte) (*invoke.Response, error) {
	return func(_ context.Context, n int, _ []byte) (*invoke.Response, error) {
		c := codes[min(n, len(codes))-1]
		return response(c, "answer "+strconv.Itoa(n)), nil
	}
}

// fakeResolver lists fixed addresses and hands them out round robin.
type fakeResolver struct {
	addrs []string
	mu    sync.Mutex
	next  int
}

func (r *fakeResolver) Resolve(context.Context, resolve.Request) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.addrs[r.next%len(r.addrs)]
	r.next++
	return a, nil
}

func (r *fakeResolver) List(context.Context, resolve.Request) ([]string, error) {
	return append([]string(nil), r.addrs...), nil
}

func (r *fakeResolver) Close() error { return nil }

// meshInvoker behaves like invoke.Invoker towards its resolver: it
// resolves an instance and, when answer reports it unreachable, resolves
// again and tries once more.
type meshInvoker struct {
	res    resolve.Resolver
	answer func(addr string) (*invoke.Response, error)

	mu    sync.Mutex
	tries map[string]int
}

func (m *meshInvoker) Invoke(ctx context.Context, target string, _ *invoke.Request) (*invoke.Response, error) {
	call := func() (*invoke.Response, error) {
		addr, err := m.res.Resolve(ctx, resolve.Request{AppID: target})
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.tries[addr]++
		m.mu.Unlock()
		return m.answer(addr)
	}
	resp, err := call()
	if err != nil && strings.Contains(err.Error(), "Unavailable") {
		resp, err = call()
	}
	return resp, err
}

func (m *meshInvoker) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.tries {
		n += v
	}
	return n
}
