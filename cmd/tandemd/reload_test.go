package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRunReloading: SIGHUP restarts the run; a run that ends on its own (the
// shutdown API, an error) ends the process; so does ctx.
func TestRunReloading(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		// results of the runs that end on their own (nil entries wait for
		// their context); hups is how many SIGHUPs are sent, one per run.
		ends      []error
		hups      int
		cancelCtx bool
		wantRuns  int
		wantErr   error
	}{
		{name: "shutdown API, no restart", ends: []error{nil}, wantRuns: 1},
		{name: "error ends", ends: []error{boom}, wantRuns: 1, wantErr: boom},
		{name: "two SIGHUPs then shutdown API", hups: 2, wantRuns: 3},
		{name: "SIGHUP then SIGTERM", hups: 1, cancelCtx: true, wantRuns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hup := make(chan os.Signal, 1)
			runs := 0
			started := make(chan struct{}, 8)
			run := func(rctx context.Context) error {
				runs++
				started <- struct{}{}
				if runs <= tc.hups {
					<-rctx.Done() // ended by the SIGHUP below
					return nil
				}
				if tc.cancelCtx {
					<-rctx.Done()
					return nil
				}
				if len(tc.ends) > 0 {
					return tc.ends[0]
				}
				return nil
			}
			go func() {
				for i := 0; i < tc.hups; i++ {
					<-started
					hup <- syscall.SIGHUP
				}
				if tc.cancelCtx {
					<-started
					cancel()
				}
			}()
			errc := make(chan error, 1)
			go func() { errc <- runReloading(ctx, hup, slog.New(slog.DiscardHandler), run) }()
			select {
			case err := <-errc:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("runReloading did not return")
			}
			if runs != tc.wantRuns {
				t.Fatalf("%d runs, want %d", runs, tc.wantRuns)
			}
		})
	}
}
