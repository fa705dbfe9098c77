package runner

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// child is a started process in its own process group.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	code int // valid after done; 128+signal if killed by a signal
	sig  bool
}

func startChild(name string, args []string, dir string, env []string, out io.Writer) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttr()
	// Do not hang on output pipes held open by the child's own children.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		c.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				c.code, c.sig = 128+int(ws.Signal()), true
			} else {
				c.code = ee.ExitCode()
			}
		} else if err != nil {
			c.code = 1
		}
		close(c.done)
	}()
	return c, nil
}

func childAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if runtime.GOOS == "linux" {
		// If tandem is killed, its children are told to stop.
		setPdeathsig(a)
	}
	return a
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, waits up to grace, then
// kills the group.
func (c *child) stop(grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	// Whatever the leader left behind in its group goes too.
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// environ is os.Environ with extra appended (later entries win).
func environ(extra ...string) []string { return append(os.Environ(), extra...) }
