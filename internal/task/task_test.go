package task

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder notes the order in which tasks saw their context end.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// untilCancelled is a task that records when it is cancelled and returns
// err after taking d to stop.
func untilCancelled(rec *recorder, name string, d time.Duration, err error) Task {
	return Task{Name: name, Run: func(ctx context.Context) error {
		<-ctx.Done()
		rec.add("cancel " + name)
		time.Sleep(d)
		rec.add("stopped " + name)
		return err
	}}
}

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestStagesStopInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- Run(ctx, nil,
				Stage{Name: "intake", Tasks: []Task{untilCancelled(rec, "a", time.Second, nil), untilCancelled(rec, "b", 2*time.Second, nil)}},
				Stage{Name: "drain", Tasks: []Task{untilCancelled(rec, "c", time.Second, nil)}},
				Stage{Name: "close", Tasks: []Task{Cleanup("d", func() error { rec.add("close d"); return nil })}},
			)
		}()
		synctest.Wait()
		if got := rec.list(); len(got) != 0 {
			t.Fatalf("tasks stopped before shutdown: %v", got)
		}
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("shutdown took %v, want 3s (2s for the slowest of the first stage, then 1s)", took)
		}
		got := rec.list()
		// a and b are cancelled together; c only once both have stopped.
		want := []string{"stopped a", "stopped b", "cancel c", "stopped c", "close d"}
		if !slices.Equal(got[2:], want) || !slices.Contains(got[:2], "cancel a") || !slices.Contains(got[:2], "cancel b") {
			t.Errorf("events %v, want both cancels then %v", got, want)
		}
	})
}

func TestCriticalTaskStopsTheGroup(t *testing.T) {
	boom := errors.New("address in use")
	tests := []struct {
		name    string
		err     error
		wantErr string
		wantLog string
	}{
		{name: "fails", err: boom, wantErr: "http server: address in use", wantLog: "critical task failed"},
		{name: "returns", err: nil, wantErr: "", wantLog: "task ended; shutting down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				var buf bytes.Buffer
				critical := Task{Name: "http server", Critical: true, Run: func(context.Context) error {
					time.Sleep(time.Second)
					return tc.err
				}}
				err := Run(context.Background(), logTo(&buf),
					Stage{Name: "intake", Tasks: []Task{critical}},
					Stage{Name: "close", Tasks: []Task{untilCancelled(rec, "components", 0, nil)}},
				)
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
					t.Fatalf("Run = %v, want %q", err, tc.wantErr)
				}
				if tc.err != nil && !errors.Is(err, boom) {
					t.Errorf("Run error %v does not wrap the task's", err)
				}
				if got := rec.list(); !slices.Equal(got, []string{"cancel components", "stopped components"}) {
					t.Errorf("later stage events %v", got)
				}
				if !strings.Contains(buf.String(), tc.wantLog) || !strings.Contains(buf.String(), `task="http server"`) {
					t.Errorf("log does not name the task:\n%s", buf.String())
				}
			})
		})
	}
}

func TestFailingTaskIsLoggedAndTheRestKeepRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		var buf bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			done <- Run(ctx, logTo(&buf), Stage{Tasks: []Task{
				{Name: "config watcher", Run: func(context.Context) error { return errors.New("bad file") }},
				untilCancelled(rec, "server", 0, nil),
			}})
		}()
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := rec.list(); len(got) != 0 {
			t.Fatalf("a non-critical failure stopped the others: %v", got)
		}
		if !strings.Contains(buf.String(), `task failed; the rest keep running" task="config watcher" error="bad file"`) {
			t.Errorf("failure not logged with the task's name:\n%s", buf.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil: a non-critical failure does not change the exit", err)
		}
	})
}

func TestErrorsWhileStoppingAreLoggedNotReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := Run(ctx, logTo(&buf), Stage{Tasks: []Task{
			Cleanup("components", func() error { return errors.New("close redis: broken pipe") }),
			{Name: "rotator", Critical: true, Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		}})
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		out := buf.String()
		if !strings.Contains(out, `task stopped with an error" task=components`) {
			t.Errorf("close error not logged by name:\n%s", out)
		}
		if strings.Contains(out, "rotator") {
			t.Errorf("a task returning context.Canceled on shutdown was reported:\n%s", out)
		}
	})
}

func TestGraceBoundsAStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		release := make(chan struct{})
		stuck := Task{Name: "subscriptions", Run: func(context.Context) error { <-release; return nil }}
		rec := &recorder{}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		err := Run(ctx, logTo(&buf),
			Stage{Name: "intake", Grace: 5 * time.Second, Tasks: []Task{stuck, untilCancelled(rec, "quick", 0, nil)}},
			Stage{Name: "serve", Tasks: []Task{untilCancelled(rec, "server", 0, nil)}},
		)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("shutdown took %v, want the 5s grace", took)
		}
		if !slices.Contains(rec.list(), "stopped server") {
			t.Errorf("the next stage was not stopped after the grace: %v", rec.list())
		}
		if out := buf.String(); !strings.Contains(out, "tasks still running after the grace period") || !strings.Contains(out, "tasks=[subscriptions]") {
			t.Errorf("overrunning task not named:\n%s", out)
		}
		close(release)
	})
}

type ctxKey struct{}

func TestTaskContextKeepsValues(t *testing.T) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	var got any
	err := Run(ctx, nil, Stage{Tasks: []Task{{Name: "t", Critical: true, Run: func(ctx context.Context) error {
		got = ctx.Value(ctxKey{})
		cancel()
		return nil
	}}}})
	if err != nil || got != "v" {
		t.Fatalf("Run = %v, value %v", err, got)
	}
}

func TestEarlyRunsBeforeTheGroupAndStopsWithIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		early := Early(context.Background(), Task{Name: "watcher", Run: func(ctx context.Context) error {
			rec.add("started watcher")
			<-ctx.Done()
			rec.add("stopped watcher")
			return errors.New("watch ended")
		}})
		synctest.Wait()
		if got := rec.list(); !slices.Equal(got, []string{"started watcher"}) {
			t.Fatalf("before the group: %v", got)
		}
		var buf bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Run(ctx, logTo(&buf), Stage{Tasks: []Task{early}}); err != nil {
			t.Fatal(err)
		}
		if got := rec.list(); !slices.Equal(got, []string{"started watcher", "stopped watcher"}) {
			t.Errorf("events %v", got)
		}
		if !strings.Contains(buf.String(), `task=watcher error="watch ended"`) {
			t.Errorf("the early task's error was lost:\n%s", buf.String())
		}
	})
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		run  bool
		want []string
	}{
		{"aborted before running", false, []string{"cancel a", "stopped a", "close b"}},
		{"run", true, []string{"cancel a", "stopped a", "close b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			var plan Plan
			first, second := plan.Stage("first", 0), plan.Stage("second", 0)
			second.Add(Cleanup("b", func() error { rec.add("close b"); return nil }))
			first.Add(untilCancelled(rec, "a", 0, nil))
			ctx, cancel := context.WithCancel(context.Background())
			if tc.run {
				cancel()
				if err := plan.Run(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
			plan.Abort(context.Background(), nil) // no-op after Run
			cancel()
			if got := rec.list(); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}
