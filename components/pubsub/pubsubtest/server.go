package pubsubtest

import (
	"net"
	"os"
	"testing"
	"time"
)

// RequireServer checks that a TCP server (what, e.g. "Redis") listens on
// addr. When it does not, the test is skipped with a message saying how to
// start it, or fails when the environment has CI=true, so CI never passes by
// skipping the backends.
func RequireServer(t testing.TB, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := what + " is not reachable at " + addr + " (" + err.Error() + "); start it to run these tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
