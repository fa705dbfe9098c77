package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
)

// runReloading calls run until it returns on its own (an error, or the
// shutdown API) or ctx ends. A signal on hup (SIGHUP) ends the current run
// gracefully and starts a new one, which reads the configuration and the
// resources again: daprd restarts its runtime in the process the same way.
func runReloading(ctx context.Context, hup <-chan os.Signal, log *slog.Logger, run func(context.Context) error) error {
	for {
		runCtx, cancel := context.WithCancel(ctx)
		var reload atomic.Bool
		done := make(chan struct{})
		go func() {
			select {
			case <-hup:
				// daprd's words first; tools wait for them.
				log.Info("Received signal 'hangup'; restarting (SIGHUP received: reading the configuration and resources again)")
				reload.Store(true)
				cancel()
			case <-done:
			}
		}()
		err := run(runCtx)
		close(done)
		cancel()
		if err != nil || !reload.Load() || ctx.Err() != nil {
			return err
		}
		log.Info("restarting after SIGHUP")
	}
}
