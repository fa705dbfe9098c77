package resilient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/resiliency"
)

const retry3 = `
policies:
  retries:
    three: {policy: constant, duration: 10ms, maxRetries: 3}
    only404: {policy: constant, duration: 10ms, maxRetries: 3, matching: {httpStatusCodes: "404"}}
  timeouts:
    short: 50ms
targets:
  apps:
    target: {retry: three}
    picky: {retry: only404}
    slow: {retry: three, timeout: short}
`

func TestInvokerAttempts(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2048)
	tests := []struct {
		name      string
		app       string
		req       *invoke.Request
		limit     int64
		script    func(context.Context, int, []byte) (*invoke.Response, error)
		attempts  int
		status    int    // relayed status; 0 means an error is expected
		body      string // relayed body
		errSubstr string
	}{
		{name: "fails twice then succeeds", app: "target", req: request([]byte("hi"), false),
			script: statuses(503, 500, 200), attempts: 3, status: 200, body: "answer 3"},
		{name: "always 503: last answer relayed", app: "target", req: request([]byte("hi"), false),
			script: statuses(503), attempts: 4, status: 503, body: "answer 4"},
		{name: "429 retried", app: "target", req: request(nil, false),
			script: statuses(429, 200), attempts: 2, status: 200, body: "answer 2"},
		{name: "404 retried by default, as in daprd", app: "target", req: request(nil, false),
			script: statuses(404, 200), attempts: 2, status: 200, body: "answer 2"},
		{name: "101 is a failure answer, as in daprd", app: "target", req: request(nil, false),
			script: statuses(101, 200), attempts: 2, status: 200, body: "answer 2"},
		{name: "304 is an answer", app: "target", req: request(nil, false),
			script: statuses(304, 200), attempts: 1, status: 304, body: "answer 1"},
		{name: "matching lists 404 only: 404 retried", app: "picky", req: request(nil, false),
			script: statuses(404, 404, 200), attempts: 3, status: 200, body: "answer 3"},
		{name: "matching lists 404 only: 503 not retried", app: "picky", req: request(nil, false),
			script: statuses(503, 200), attempts: 1, status: 503, body: "answer 1"},
		{name: "streamed body attempted once", app: "target", req: request([]byte("stream"), true),
			script: statuses(503, 200), attempts: 1, status: 503, body: "answer 1"},
		{name: "body over the replay limit attempted once", app: "target", req: request(big, false), limit: 1024,
			script: statuses(503, 200), attempts: 1, status: 503, body: "answer 1"},
		{name: "transport error retried then given up", app: "target", req: request(nil, false),
			script: func(context.Context, int, []byte) (*invoke.Response, error) {
				return nil, status.Error(codes.Unavailable, "connection refused")
			}, attempts: 4, errSubstr: "gave up after 4 attempt(s)"},
		{name: "no policy: an answer is never retried", app: "other", req: request([]byte("x"), false),
			script: statuses(503, 200), attempts: 1, status: 503, body: "answer 1"},
		{name: "no policy: built-in retries skip other errors", app: "other", req: request(nil, false),
			script: func(context.Context, int, []byte) (*invoke.Response, error) {
				return nil, status.Error(codes.InvalidArgument, "bad")
			}, attempts: 1, errSubstr: "bad"},
		{name: "timeout per attempt", app: "slow", req: request(nil, false),
			script: func(ctx context.Context, _ int, _ []byte) (*invoke.Response, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}, attempts: 4, errSubstr: "attempt timed out after 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeInvoker{script: tt.script}
			iv := NewInvoker(InvokerOptions{Next: fake, Policies: policies(t, retry3).Set, ReplayLimit: tt.limit})
			resp, err := iv.Invoke(context.Background(), tt.app, tt.req)
			if got := fake.count(); got != tt.attempts {
				t.Errorf("attempts = %d, want %d", got, tt.attempts)
			}
			if tt.status == 0 {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if got := int(resp.Message.GetStatus().GetCode()); got != tt.status {
				t.Errorf("status = %d, want %d", got, tt.status)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tt.body {
				t.Errorf("body = %q, want %q", b, tt.body)
			}
			// Every answer but the relayed one was closed.
			for i, r := range fake.resps[:len(fake.resps)-1] {
				if r != nil && !r.Body.(*trackedBody).closed {
					t.Errorf("answer %d of a retried attempt was not closed", i+1)
				}
			}
			// A replayed body reaches every attempt whole.
			if tt.req.ContentLength > 0 {
				for i, got := range fake.bodies {
					if i > 0 && got != fake.bodies[0] {
						t.Errorf("attempt %d got body %q, attempt 1 got %q", i+1, got, fake.bodies[0])
					}
				}
			}
		})
	}
}

func TestInvokerBuiltInRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeInvoker{script: func(context.Context, int, []byte) (*invoke.Response, error) {
			return nil, status.Error(codes.Unavailable, "connection refused")
		}}
		iv := NewInvoker(InvokerOptions{Next: fake, Policies: policies(t, "").Set})
		start := time.Now()
		_, err := iv.Invoke(context.Background(), "other", request([]byte("x"), false))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want Unavailable", err)
		}
		if fake.count() != 4 {
			t.Errorf("attempts = %d, want 4 (DaprBuiltInServiceRetries: 3 retries)", fake.count())
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("took %s, want 3s (1s between retries)", d)
		}
	})
}

// The invoker retries an unreachable instance once by itself; that retry
// counts against the policy, so the built-in 3 retries make 4 tries in
// all, not 8.
func TestInvokerTransportRetriesNotDoubled(t *testing.T) {
	for _, tc := range []struct {
		name, spec, app string
		want            int
	}{
		{"built-in", "", "other", 4},
		{"policy maxRetries 3", retry3, "target", 4}, // 2 tries per attempt: 2 attempts reach 3+1
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rr := NewResolver(&fakeResolver{addrs: []string{"a:1", "b:1"}}, ResolverOptions{})
				mesh := &meshInvoker{res: rr, tries: map[string]int{}, answer: func(string) (*invoke.Response, error) {
					return nil, status.Error(codes.Unavailable, "connection refused")
				}}
				iv := NewInvoker(InvokerOptions{Next: mesh, Policies: policies(t, tc.spec).Set, Resolver: rr})
				_, err := iv.Invoke(context.Background(), tc.app, request(nil, false))
				if err == nil {
					t.Fatal("want an error")
				}
				if got := mesh.total(); got != tc.want {
					t.Errorf("instances tried = %d, want %d (err: %v)", got, tc.want, err)
				}
			})
		})
	}
}

func TestInvokerBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var states []string
		p := policies(t, `
policies:
  circuitBreakers:
    cb: {maxRequests: 1, timeout: 5s, trip: consecutiveFailures >= 2}
targets:
  apps:
    target: {circuitBreaker: cb}
`, resiliency.WithHooks(resiliency.Hooks{BreakerStateChange: func(_, _ string, _, to resiliency.BreakerState) {
			states = append(states, string(to))
		}}))
		healthy := false
		fake := &fakeInvoker{script: func(_ context.Context, n int, _ []byte) (*invoke.Response, error) {
			if healthy {
				return response(200, "ok"), nil
			}
			return response(503, "down"), nil
		}}
		iv := NewInvoker(InvokerOptions{Next: fake, Policies: p.Set})
		call := func() (int, error) {
			resp, err := iv.Invoke(context.Background(), "target", request(nil, false))
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return int(resp.Message.Status.Code), nil
		}
		for i := range 2 {
			if code, err := call(); code != 503 || err != nil {
				t.Fatalf("call %d: %d, %v; want the app's 503 relayed", i+1, code, err)
			}
		}
		// Open: fails fast without calling the app.
		_, err := call()
		var open *resiliency.BreakerOpenError
		if !errors.As(err, &open) || !strings.Contains(err.Error(), `circuit breaker "cb" for app "target" is open; failing fast`) {
			t.Fatalf("err = %v, want the breaker's open error", err)
		}
		if fake.count() != 2 {
			t.Fatalf("app called %d times, want 2 (open breaker must not call it)", fake.count())
		}
		// Half-open after 5s: one trial; it fails, so open again.
		time.Sleep(5*time.Second + time.Millisecond)
		if code, _ := call(); code != 503 {
			t.Fatalf("trial call: %d, want 503", code)
		}
		if _, err := call(); !errors.Is(err, resiliency.ErrBreakerOpen) {
			t.Fatalf("after a failed trial: %v, want open", err)
		}
		// Half-open again; the app recovered: the trial closes it.
		time.Sleep(5*time.Second + time.Millisecond)
		healthy = true
		for range 3 {
			if code, err := call(); code != 200 {
				t.Fatalf("after recovery: %d, %v", code, err)
			}
		}
		want := "open,half-open,open,half-open,closed"
		if got := strings.Join(states, ","); got != want {
			t.Errorf("transitions = %s, want %s", got, want)
		}
	})
}

// A response streamed after the attempt returned must stay readable: the
// attempt timeout ends with the attempt, not with the body.
func TestInvokerTimeoutKeepsResponseBody(t *testing.T) {
	fake := &fakeInvoker{script: func(ctx context.Context, _ int, _ []byte) (*invoke.Response, error) {
		r := response(200, "")
		r.Body = io.NopCloser(&ctxReader{ctx: ctx, data: []byte("streamed")})
		return r, nil
	}}
	iv := NewInvoker(InvokerOptions{Next: fake, Policies: policies(t, retry3).Set})
	resp, err := iv.Invoke(context.Background(), "slow", request(nil, false))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond) // past the 50ms attempt timeout
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "streamed" {
		t.Fatalf("body = %q, %v", b, err)
	}
	resp.Body.Close()
}

// ctxReader fails once its context ends, like a gRPC stream.
type ctxReader struct {
	ctx  context.Context
	data []byte
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestInvokerEjection(t *testing.T) {
	var ejected []string
	rr := NewResolver(&fakeResolver{addrs: []string{"good:1", "bad:1"}}, ResolverOptions{
		Ejection: resiliency.EjectorConfig{ConsecutiveFailures: 3, BaseEjection: time.Minute,
			OnEject: func(addr string, _ time.Duration) { ejected = append(ejected, addr) }},
	})
	mesh := &meshInvoker{res: rr, tries: map[string]int{}, answer: func(addr string) (*invoke.Response, error) {
		if addr == "bad:1" {
			return response(503, "bad"), nil
		}
		return response(200, "good"), nil
	}}
	iv := NewInvoker(InvokerOptions{Next: mesh, Policies: policies(t, "").Set, Resolver: rr})
	call := func() int {
		resp, err := iv.Invoke(context.Background(), "pool", request(nil, false))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return int(resp.Message.Status.Code)
	}
	for range 6 { // round robin: 3 each; the 3rd failure in a row ejects bad
		call()
	}
	if len(ejected) != 1 || ejected[0] != "bad:1" {
		t.Fatalf("ejected = %v, want [bad:1]", ejected)
	}
	for i := range 10 {
		if code := call(); code != 200 {
			t.Fatalf("call %d after ejection: %d, want 200 from the healthy instance", i+1, code)
		}
	}
	if mesh.tries["bad:1"] != 3 {
		t.Errorf("bad instance tried %d times, want 3", mesh.tries["bad:1"])
	}
}
