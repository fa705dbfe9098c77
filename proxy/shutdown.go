package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/tandemrun/tandem/internal/task"
)

// ErrForcedShutdown is what Run returns after ForceShutdown: the process
// should exit with status 1 at once, as daprd does.
var ErrForcedShutdown = errors.New("forced shutdown requested via the shutdown API")

// ErrGraceExceeded is what Run returns when in-flight work did not finish
// within Options.GracefulShutdown and was cut off: daprd exits 1 then.
var ErrGraceExceeded = errors.New("graceful shutdown timeout exceeded")

// logGraceExceeded is daprd's log line for ErrGraceExceeded.
const logGraceExceeded = "Graceful shutdown timeout exceeded, forcing shutdown"

// forceFlushDelay lets the answer to the shutdown request reach the caller
// before the servers are torn down (daprd waits as long).
const forceFlushDelay = 100 * time.Millisecond

// ForceShutdown ends Run at once, without finishing in-flight requests or
// deliveries; Run returns ErrForcedShutdown.
func (s *Sidecar) ForceShutdown() {
	time.Sleep(forceFlushDelay)
	s.forceOnce.Do(func() { close(s.forced) })
}

// noteGraceExceeded wraps a server task to remember when in-flight work
// had to be cut off (the runner only logs errors returned while stopping).
func (s *Sidecar) noteGraceExceeded(t task.Task) task.Task {
	run := t.Run
	t.Run = func(ctx context.Context) error {
		err := run(ctx)
		if errors.Is(err, ErrGraceExceeded) {
			s.graceExceeded.Store(true)
		}
		return err
	}
	return t
}

// shutdownOutcome is what Run returns given the task group's error: a
// forced shutdown or a cut-off graceful one count as failures, as in daprd.
func (s *Sidecar) shutdownOutcome(err error) error {
	select {
	case <-s.forced:
		return ErrForcedShutdown
	default:
	}
	if err == nil && s.graceExceeded.Load() {
		s.log.Error(logGraceExceeded, "grace", s.o.GracefulShutdown.String())
		return ErrGraceExceeded
	}
	return err
}

// stopNow closes every server without waiting for anything; their tasks
// then end at once.
func (s *Sidecar) stopNow() {
	s.grpcSrv.Stop()
	s.internalSrv.Stop()
	if s.lean != nil {
		_ = s.lean.Close()
	}
	_ = s.httpSrv.Close()
	if s.metricsSrv != nil {
		_ = s.metricsSrv.Close()
	}
}
