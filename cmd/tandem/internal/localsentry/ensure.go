package localsentry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/tail"
)

// StartTimeout bounds how long Ensure waits for a new sentry.
const StartTimeout = 15 * time.Second

// Ensure returns the running sentry of h, starting `exe sentry --home DIR`
// in the background (in its own session, so Ctrl-C in the terminal does not
// reach it) if none is healthy or it uses an outdated CA. progress receives
// one line per step. Concurrent callers are serialised with a lock file.
func Ensure(ctx context.Context, h *home.Home, exe string, progress io.Writer) (*registry.Sentry, error) {
	if err := os.MkdirAll(h.LogsDir(), 0o700); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, h.SentryLock())
	if err != nil {
		return nil, err
	}
	defer unlock()

	fp, err := Fingerprint(h)
	if err != nil {
		return nil, err
	}
	if s, err := registry.LoadSentry(h.SentryFile()); err == nil {
		// One without placement or xDS is from an older tandem: replaced.
		if s.CA == fp && s.PlacementAddress != "" && s.XDSAddress != "" && Healthy(ctx, s) {
			return s, nil
		}
		fmt.Fprintf(progress, "ℹ️  Restarting the local sentry (pid %d): the CA changed, it has no placement or xDS, or it is not healthy\n", s.PID)
		Stop(s, 5*time.Second)
	}

	fmt.Fprintf(progress, "ℹ️  Starting the local sentry (CA in %s, log %s)\n", h.CertsDir(), h.SentryLog())
	logf, err := os.OpenFile(h.SentryLog(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "sentry", "--home", h.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = h.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sentry (%s sentry): %w", exe, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reap it if it dies while we run

	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
		if s, err := registry.LoadSentry(h.SentryFile()); err == nil && s.PID == cmd.Process.Pid && Healthy(ctx, s) {
			fmt.Fprintf(progress, "✅  Sentry is up on %s (pid %d)\n", s.Address, s.PID)
			return s, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("sentry exited at start (%v); last lines of %s:\n%s", err, h.SentryLog(), tail.File(h.SentryLog(), 15))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	_ = cmd.Process.Kill()
	return nil, fmt.Errorf("sentry did not become healthy in %s; last lines of %s:\n%s", StartTimeout, h.SentryLog(), tail.File(h.SentryLog(), 15))
}

// Healthy reports whether s answers /healthz.
func Healthy(ctx context.Context, s *registry.Sentry) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.HealthAddr+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop sends SIGTERM to s and waits up to grace before SIGKILL.
func Stop(s *registry.Sentry, grace time.Duration) {
	if !s.Alive() {
		return
	}
	_ = syscall.Kill(s.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !s.Alive() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(s.PID, syscall.SIGKILL)
}

// lock takes an exclusive flock on path, waiting while ctx allows.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
