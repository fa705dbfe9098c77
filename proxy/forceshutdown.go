package proxy

import (
	"errors"
	"time"
)

// ErrForcedShutdown is what Run returns after ForceShutdown: the process
// should exit with status 1 at once, as daprd does.
var ErrForcedShutdown = errors.New("forced shutdown requested via the shutdown API")

// forceFlushDelay lets the answer to the shutdown request reach the caller
// before the servers are torn down (daprd waits as long).
const forceFlushDelay = 100 * time.Millisecond

// ForceShutdown ends Run at once, without finishing in-flight requests or
// deliveries; Run returns ErrForcedShutdown.
func (s *Sidecar) ForceShutdown() {
	time.Sleep(forceFlushDelay)
	s.forceOnce.Do(func() { close(s.forced) })
}

// stopNow closes every server without waiting for anything; their tasks
// then end at once.
func (s *Sidecar) stopNow() {
	s.grpcSrv.Stop()
	s.internalSrv.Stop()
	_ = s.httpSrv.Close()
	if s.metricsSrv != nil {
		_ = s.metricsSrv.Close()
	}
}
