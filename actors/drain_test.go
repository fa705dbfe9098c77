package actors

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestClampDrainTimeout(t *testing.T) {
	for _, tc := range []struct {
		name               string
		drain, disseminate time.Duration
		want               time.Duration
		warns              bool
	}{
		{"shorter kept", 3 * time.Second, 4 * time.Second, 3 * time.Second, false},
		{"equal clamped", 4 * time.Second, 4 * time.Second, 3200 * time.Millisecond, true},
		{"longer clamped", time.Minute, 4 * time.Second, 3200 * time.Millisecond, true},
		{"floored at 2s", time.Minute, 2 * time.Second, 2 * time.Second, true},
		{"large bound", time.Hour, 30 * time.Second, 24 * time.Second, true},
		{"no bound", time.Hour, 0, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			got := ClampDrainTimeout(tc.drain, tc.disseminate, "entities=abc", slog.New(slog.NewTextHandler(&buf, nil)))
			if got != tc.want {
				t.Errorf("ClampDrainTimeout(%s, %s) = %s, want %s", tc.drain, tc.disseminate, got, tc.want)
			}
			warned := strings.Contains(buf.String(), "for entities=abc meets or exceeds the dissemination timeout")
			if warned != tc.warns {
				t.Errorf("warned = %v, want %v; log: %s", warned, tc.warns, buf.String())
			}
		})
	}
}

func TestParseAppConfigWithinClamps(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	types, _, err := ParseAppConfigWithin([]byte(`{"entities":["a","b","c"],"drainOngoingCallTimeout":"1m",
		"entitiesConfig":[{"entities":["b"],"drainOngoingCallTimeout":"10s"},{"entities":["c"],"drainOngoingCallTimeout":"1s"}]}`),
		4*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]time.Duration{"a": 3200 * time.Millisecond, "b": 3200 * time.Millisecond, "c": time.Second} {
		if got := types[typ].DrainCallTimeout; got != want {
			t.Errorf("type %s: drain %s, want %s", typ, got, want)
		}
	}
	for _, line := range []string{"drainOngoingCallTimeout (1m0s) for global config meets", "drainOngoingCallTimeout (10s) for entities=b meets"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("log lacks %q: %s", line, buf.String())
		}
	}
	if strings.Contains(buf.String(), "entities=c") {
		t.Errorf("a drain within the bound was reported: %s", buf.String())
	}

	// Without a bound nothing is clamped.
	types, _, err = ParseAppConfig([]byte(`{"entities":["a"],"drainOngoingCallTimeout":"1h"}`))
	if err != nil || types["a"].DrainCallTimeout != time.Hour {
		t.Fatalf("ParseAppConfig: %v, drain %s", err, types["a"].DrainCallTimeout)
	}
}

// call starts a call of actorType in f that ends when its context does or
// when finish is closed; it returns a channel with the call's cause.
func startCall(f *inflight, actorType string, finish <-chan struct{}) <-chan error {
	ctx, done := f.acquire(context.Background(), actorType)
	out := make(chan error, 1)
	go func() {
		defer done()
		select {
		case <-ctx.Done():
			out <- context.Cause(ctx)
		case <-finish:
			out <- nil
		}
	}()
	return out
}

func TestInflightDrain(t *testing.T) {
	log := slog.New(slog.DiscardHandler)

	t.Run("calls that end within the wait are not cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var f inflight
			finish := make(chan struct{})
			res := startCall(&f, "a", finish)
			time.AfterFunc(time.Second, func() { close(finish) })
			start := time.Now()
			f.drain(map[string]drainPolicy{"a": {wait: 5 * time.Second, drain: true}}, log)
			if d := time.Since(start); d != time.Second {
				t.Errorf("drain returned after %s, want 1s (when the call ended)", d)
			}
			if err := <-res; err != nil {
				t.Errorf("call ended with %v, want normally", err)
			}
		})
	})

	t.Run("calls still running at the end of the wait are cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var f inflight
			var buf bytes.Buffer
			never := make(chan struct{})
			res := startCall(&f, "a", never)
			other := startCall(&f, "b", never)
			start := time.Now()
			f.drain(map[string]drainPolicy{"a": {wait: 2 * time.Second, drain: true}}, slog.New(slog.NewTextHandler(&buf, nil)))
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("drain returned after %s, want 2s", d)
			}
			if err := <-res; !errors.Is(err, errTableUpdated) {
				t.Errorf("call ended with %v, want %v", err, errTableUpdated)
			}
			if !strings.Contains(buf.String(), "Timed out waiting for actor type 'a' in-flight lock claims to be released") {
				t.Errorf("no timeout logged: %s", buf.String())
			}
			synctest.Wait()
			select {
			case err := <-other:
				t.Errorf("a call of a type not drained ended: %v", err)
			default:
			}
			close(never)
			<-other
		})
	})

	t.Run("without drainRebalancedActors calls are cancelled at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var f inflight
			never := make(chan struct{})
			defer close(never)
			res := startCall(&f, "a", never)
			start := time.Now()
			f.drain(map[string]drainPolicy{"a": {wait: time.Minute, drain: false}}, log)
			if err := <-res; !errors.Is(err, errTableUpdated) {
				t.Errorf("call ended with %v, want %v", err, errTableUpdated)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("cancelled after %s, want at once", d)
			}
		})
	})

	t.Run("placement lost: one deadline for every type", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var f inflight
			var buf bytes.Buffer
			never, finish := make(chan struct{}), make(chan struct{})
			a := startCall(&f, "a", never)
			b := startCall(&f, "b", finish)
			c := startCall(&f, "c", never)
			time.AfterFunc(time.Second, func() { close(finish) })
			start := time.Now()
			f.drainAll(drainPolicy{wait: 2 * time.Second, drain: true}, errPlacementLost, slog.New(slog.NewTextHandler(&buf, nil)))
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("drain returned after %s, want 2s", d)
			}
			if err := <-b; err != nil {
				t.Errorf("a call that ended in time ended with %v", err)
			}
			for _, res := range []<-chan error{a, c} {
				if err := <-res; !errors.Is(err, errPlacementLost) {
					t.Errorf("call ended with %v, want %v", err, errPlacementLost)
				}
			}
			if !strings.Contains(buf.String(), "Timed out waiting for actor in-flight lock claims to be released, force cancelling remaining claims") {
				t.Errorf("no timeout logged: %s", buf.String())
			}
		})
	})

	t.Run("placement lost without drainRebalancedActors: cancelled at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var f inflight
			never := make(chan struct{})
			defer close(never)
			res := startCall(&f, "a", never)
			start := time.Now()
			f.drainAll(drainPolicy{wait: time.Minute}, errPlacementLost, log)
			if err := <-res; !errors.Is(err, errPlacementLost) {
				t.Errorf("call ended with %v, want %v", err, errPlacementLost)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("cancelled after %s, want at once", d)
			}
		})
	})

	t.Run("ended calls are forgotten", func(t *testing.T) {
		var f inflight
		_, done := f.acquire(context.Background(), "a")
		done()
		done()
		f.mu.Lock()
		n := len(f.calls)
		f.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d calls tracked after they ended", n)
		}
	})
}
