package framework

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandemrun/tandem/internal/syncbuf"
)

// Process is a started program whose output is kept for the test log.
type Process struct {
	Name string
	Args []string
	Env  []string

	t   testing.TB
	mu  sync.Mutex
	cmd *exec.Cmd
	out *syncbuf.Buffer
	// stdout is what the process wrote to its standard output alone.
	stdout *syncbuf.Buffer
	done   chan struct{}
	err    error
}

// Start runs bin with args and env (added to the current environment) and
// stops it when the test ends. Its output is printed if the test fails.
func Start(t testing.TB, name, bin string, args []string, env ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Args: append([]string{bin}, args...), Env: env, t: t, out: &syncbuf.Buffer{}, stdout: &syncbuf.Buffer{}}
	if err := p.start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("---- output of %s ----\n%s", name, p.Output())
		}
	})
	return p
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout = io.MultiWriter(p.out, p.stdout)
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	done := make(chan struct{})
	p.done = done
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Output returns everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Stdout returns what the process wrote to its standard output alone.
func (p *Process) Stdout() string { return p.stdout.String() }

// Signal sends sig to the process and returns at once.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}

// WaitExit waits up to timeout for the process to exit and returns its exit
// code; ok is false if it is still running.
func (p *Process) WaitExit(timeout time.Duration) (code int, ok bool) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// PID returns the process ID.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM, waits up to 10 s, then kills.
func (p *Process) Stop() {
	p.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill kills the process at once (SIGKILL), as a crash would.
func (p *Process) Kill() {
	p.signal(syscall.SIGKILL, 5*time.Second)
}

func (p *Process) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart stops the process (if running) and starts it again with the same
// arguments and environment.
func (p *Process) Restart() {
	p.t.Helper()
	p.Stop()
	if err := p.start(); err != nil {
		p.t.Fatalf("restart %s: %v", p.Name, err)
	}
}

// Exited reports whether the process has exited, and its error.
func (p *Process) Exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a loopback TCP port that was free a moment ago and that
// this test process has not handed out before (the kernel may offer the
// same ephemeral port twice in a row once its listener is closed).
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatal("free port: no unused port after 100 tries")
	return 0
}

// AppPort returns a free loopback TCP port below the kernel's ephemeral
// range (20000-32767), for a port a process binds only after others
// started: `tandem run` starts the local sentry, whose listeners take
// ephemeral ports, before the app listens on its --app-port, and a port
// from FreePort may be handed to the sentry in between.
func AppPort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		port := 20000 + rand.IntN(12768)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		given[port] = true
		return port
	}
	t.Fatal("app port: no free port in 20000-32767 after 200 tries")
	return 0
}

// WaitHTTP polls url until it answers with status want or timeout passes.
func WaitHTTP(ctx context.Context, url string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s (last: %s)", url, timeout, last)
}

// WaitTCP polls addr until it accepts a connection or timeout passes.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not accepting connections after %s", addr, timeout)
}

func itoa(i int) string { return strconv.Itoa(i) }
