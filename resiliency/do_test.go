package resiliency

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDoRetryCounts(t *testing.T) {
	half := func() float64 { return 0.5 } // jitter factor exactly 1
	tests := []struct {
		name     string
		spec     string
		errs     []error
		attempts int
		elapsed  time.Duration
		ok       bool
	}{
		{name: "constant, always failing", spec: "policies: {retries: {r: {duration: 1s, maxRetries: 3}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{errBoom}, attempts: 4, elapsed: 3 * time.Second},
		{name: "constant, recovers on 3rd", spec: "policies: {retries: {r: {duration: 1s, maxRetries: 5}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{errBoom, errBoom, nil}, attempts: 3, elapsed: 2 * time.Second, ok: true},
		{name: "maxRetries 0", spec: "policies: {retries: {r: {duration: 1s, maxRetries: 0}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{errBoom}, attempts: 1},
		{name: "default duration 5s", spec: "policies: {retries: {r: {maxRetries: 2}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{errBoom}, attempts: 3, elapsed: 10 * time.Second},
		// 500ms, 750ms, then capped at maxInterval 1s twice.
		{name: "exponential", spec: "policies: {retries: {r: {policy: exponential, maxInterval: 1s, maxRetries: 4}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{errBoom}, attempts: 5, elapsed: 3250 * time.Millisecond},
		{name: "no retry policy", spec: "policies: {timeouts: {t: 1h}}\ntargets: {apps: {x: {timeout: t}}}",
			errs: []error{errBoom}, attempts: 1},
		{name: "permanent", spec: "policies: {retries: {r: {duration: 1s, maxRetries: 3}}}\ntargets: {apps: {x: {retry: r}}}",
			errs: []error{Permanent(errBoom)}, attempts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				p := buildSet(t, tt.spec, WithRand(half), WithHooks(rec.hooks())).ForApp("x")
				f := failing(tt.errs...)
				start := time.Now()
				res, err := Do(t.Context(), p, f.op)
				if got := time.Since(start); got != tt.elapsed {
					t.Errorf("elapsed %v, want %v", got, tt.elapsed)
				}
				if f.n() != tt.attempts {
					t.Errorf("attempts = %d, want %d", f.n(), tt.attempts)
				}
				if rec.retries != tt.attempts-1 {
					t.Errorf("retry hook calls = %d, want %d", rec.retries, tt.attempts-1)
				}
				if tt.ok != (err == nil) {
					t.Fatalf("err = %v, want ok=%v", err, tt.ok)
				}
				if err != nil && !errors.Is(err, errBoom) {
					t.Errorf("err %v does not wrap the op's error", err)
				}
				if res != tt.attempts {
					t.Errorf("result = %d, want the last attempt's (%d)", res, tt.attempts)
				}
			})
		})
	}
}

func TestExponentialJitterBounds(t *testing.T) {
	r := &Retry{Policy: Exponential, MaxInterval: time.Minute}
	for n, want := range []time.Duration{500 * time.Millisecond, 750 * time.Millisecond, 1125 * time.Millisecond} {
		if lo := r.backoff(n, func() float64 { return 0 }); lo != want/2 {
			t.Errorf("retry %d low = %v, want %v", n, lo, want/2)
		}
		if hi := r.backoff(n, func() float64 { return 0.999999 }); hi < want*3/2-time.Millisecond || hi > want*3/2 {
			t.Errorf("retry %d high = %v, want ~%v", n, hi, want*3/2)
		}
	}
	r.MaxInterval = time.Second
	if got := r.backoff(30, func() float64 { return 0.99 }); got != time.Second {
		t.Errorf("capped = %v, want 1s", got)
	}
}

func TestDoForeverUntilDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, "policies: {retries: {r: {duration: 1s, maxRetries: -1}}}\ntargets: {apps: {x: {retry: r}}}").ForApp("x")
		ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
		defer cancel()
		f := failing(errBoom)
		start := time.Now()
		_, err := Do(ctx, p, f.op)
		// Attempts at 0s, 1s, 2s, 3s; one at 4s would start after the deadline.
		if f.n() != 4 || time.Since(start) != 3*time.Second {
			t.Errorf("attempts %d after %v, want 4 after 3s", f.n(), time.Since(start))
		}
		if err == nil || !strings.Contains(err.Error(), "after the request's deadline") || !errors.Is(err, errBoom) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDoCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, "policies: {retries: {r: {duration: 1h}}}\ntargets: {apps: {x: {retry: r}}}").ForApp("x")
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		f := failing(errBoom)
		start := time.Now()
		_, err := Do(ctx, p, f.op)
		if f.n() != 1 || time.Since(start) != time.Second || !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Errorf("attempts %d, elapsed %v, err %v", f.n(), time.Since(start), err)
		}
	})
}

func TestDoMatching(t *testing.T) {
	http5xx := "policies: {retries: {r: {duration: 1s, maxRetries: 2, matching: {httpStatusCodes: '429,500-599'}}}}\ntargets: {apps: {x: {retry: r}}}"
	grpc14 := "policies: {retries: {r: {duration: 1s, maxRetries: 2, matching: {gRPCStatusCodes: '14'}}}}\ntargets: {apps: {x: {retry: r}}}"
	none := "policies: {retries: {r: {duration: 1s, maxRetries: 2}}}\ntargets: {apps: {x: {retry: r}}}"
	httpErr := func(c int) error { return &StatusError{HTTP: c} }
	grpcErr := func(c codes.Code) error { return &StatusError{GRPC: c} }
	tests := []struct {
		name  string
		spec  string
		err   error
		retry bool
	}{
		{"matched 503", http5xx, httpErr(503), true},
		{"matched 429", http5xx, httpErr(429), true},
		{"unmatched 404", http5xx, httpErr(404), false},
		{"unmatched 408 when list set", http5xx, httpErr(408), false},
		{"plain error still retried", http5xx, errBoom, true},
		{"default 503", none, httpErr(503), true},
		{"default 500", none, httpErr(http.StatusInternalServerError), true},
		{"default 404 retried, as in daprd", none, httpErr(404), true},
		{"default 400 retried, as in daprd", none, httpErr(400), true},
		{"default 408 retried", none, httpErr(408), true},
		{"default 429 retried", none, httpErr(429), true},
		{"grpc matched unavailable", grpc14, grpcErr(codes.Unavailable), true},
		{"grpc unmatched internal", grpc14, grpcErr(codes.Internal), false},
		{"grpc status error matched", grpc14, status.Error(codes.Unavailable, "down"), true},
		{"grpc default internal", none, grpcErr(codes.Internal), true},
		{"grpc default invalid argument", none, status.Error(codes.InvalidArgument, "bad"), true},
		{"grpc default not found", none, grpcErr(codes.NotFound), true},
		{"grpc default canceled status", none, grpcErr(codes.Canceled), true},
		{"http list leaves grpc codes to their default", http5xx, grpcErr(codes.NotFound), true},
		{"wrapped status error", none, errors.Join(errBoom, httpErr(404)), true},
		{"wrapped unmatched status error", http5xx, errors.Join(errBoom, httpErr(404)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := buildSet(t, tt.spec).ForApp("x")
				f := failing(tt.err)
				_, err := Do(t.Context(), p, f.op)
				want := 1
				if tt.retry {
					want = 3
				}
				if f.n() != want {
					t.Errorf("attempts = %d, want %d", f.n(), want)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("err = %v, want it to wrap %v", err, tt.err)
				}
			})
		})
	}
}

func TestDoRelaysLastResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, "policies: {retries: {r: {duration: 1s, maxRetries: 2}}}\ntargets: {apps: {x: {retry: r}}}").ForApp("x")
		var discarded []any
		n := 0
		res, err := Do(t.Context(), p, func(context.Context) (string, error) {
			n++
			return "body" + string(rune('0'+n)), &StatusError{HTTP: 503}
		}, Discard(func(v any) { discarded = append(discarded, v) }))
		var se *StatusError
		if res != "body3" || !errors.As(err, &se) || se.HTTP != 503 {
			t.Errorf("got %q, %v; want the last response with its status", res, err)
		}
		if len(discarded) != 2 || discarded[0] != "body1" || discarded[1] != "body2" {
			t.Errorf("discarded = %v", discarded)
		}
	})
}

func TestDoNotReplayable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, "policies: {retries: {r: {duration: 1s, maxRetries: 5}}}\ntargets: {apps: {x: {retry: r}}}").ForApp("x")
		f := failing(errBoom)
		_, err := Do(t.Context(), p, f.op, Replayable(false))
		if f.n() != 1 || !errors.Is(err, errBoom) {
			t.Errorf("non-replayable: attempts %d, err %v", f.n(), err)
		}
	})
}

func TestDoNilPolicy(t *testing.T) {
	f := failing(errBoom)
	if _, err := Do(t.Context(), nil, f.op); f.n() != 1 || err != errBoom {
		t.Errorf("nil policy: attempts %d, err %v", f.n(), err)
	}
}

func TestDoPerAttemptTimeout(t *testing.T) {
	spec := "policies: {timeouts: {t: 1s}, retries: {r: {duration: 1s, maxRetries: 2}}}\ntargets: {apps: {x: {timeout: t, retry: r}}}"
	tests := []struct {
		name     string
		op       func(ctx context.Context) (string, error)
		attempts int
	}{
		{"op honours ctx", func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "late", ctx.Err()
		}, 3},
		{"op ignores ctx", func(ctx context.Context) (string, error) {
			time.Sleep(10 * time.Second)
			return "late", nil
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				p := buildSet(t, spec, WithHooks(rec.hooks())).ForApp("x")
				var calls atomic.Int32
				discarded := make(chan any, 10)
				start := time.Now()
				res, err := Do(t.Context(), p, func(ctx context.Context) (string, error) {
					calls.Add(1)
					return tt.op(ctx)
				}, Discard(func(v any) { discarded <- v }))
				// 3 attempts of 1s each with 1s between: 5s, never the op's 10s.
				if time.Since(start) != 5*time.Second || int(calls.Load()) != tt.attempts {
					t.Errorf("elapsed %v, calls %d", time.Since(start), calls.Load())
				}
				if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `attempt timed out after 1s (timeout policy "t")`) {
					t.Errorf("err = %v", err)
				}
				if rec.timeouts != 3 {
					t.Errorf("timeout hook calls = %d", rec.timeouts)
				}
				synctest.Wait()
				time.Sleep(20 * time.Second) // let abandoned attempts finish
				synctest.Wait()
				// Every late result is discarded, except one the op returned
				// in time with the deadline error: that one is Do's result.
				returned := 0
				if res == "late" {
					returned = 1
				}
				if len(discarded)+returned != 3 {
					t.Errorf("discarded %d late results and returned %q, want 3 in all", len(discarded), res)
				}
			})
		})
	}
}

func TestDoTimeoutSuccessWithinLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := buildSet(t, "policies: {timeouts: {t: 1s}}\ntargets: {apps: {x: {timeout: t}}}").ForApp("x")
		res, err := Do(t.Context(), p, func(ctx context.Context) (int, error) {
			time.Sleep(900 * time.Millisecond)
			return 7, nil
		})
		if res != 7 || err != nil {
			t.Errorf("got %d, %v", res, err)
		}
	})
}
