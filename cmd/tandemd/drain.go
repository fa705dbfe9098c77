package main

import (
	"os"
	"time"
)

// stdoutDrainLimit bounds how long tandemd waits, before it exits, for
// whoever reads its standard output to have read the last log lines.
const stdoutDrainLimit = 2 * time.Second

// waitStdoutRead waits, up to limit, until the pipe behind f (standard
// output) holds no unread bytes. When a parent process reads the sidecar's
// log through a pipe and closes its end as soon as the sidecar exits (Go's
// os/exec does that in Cmd.Wait), the lines still in the pipe are lost:
// the last ones, "Daprd shutdown gracefully" among them, which tools and
// tests wait for. It returns at once when f is not a pipe (a file, a
// terminal) or the platform cannot tell.
func waitStdoutRead(f *os.File, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		n, ok := unreadBytes(f)
		if !ok || n == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
