package main

import (
	"io"
	"os"
	"testing"
	"time"
)

// TestWaitStdoutRead: tandemd does not exit while its last log lines sit
// unread in the pipe to its reader; once they are read, it goes on.
func TestWaitStdoutRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	line := "level=INFO msg=\"" + logStopped + "\"\n"
	if _, err := io.WriteString(w, line); err != nil {
		t.Fatal(err)
	}
	if n, ok := unreadBytes(w); !ok || n != len(line) {
		t.Fatalf("unreadBytes = %d, %v; want %d, true", n, ok, len(line))
	}
	done := make(chan struct{})
	go func() { defer close(done); waitStdoutRead(w, time.Minute) }()
	select {
	case <-done:
		t.Fatal("returned with the line unread")
	case <-time.After(100 * time.Millisecond):
	}
	buf := make([]byte, len(line))
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("still waiting after the line was read")
	}
}

// TestWaitStdoutReadNotAPipe: a file is not waited for.
func TestWaitStdoutReadNotAPipe(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, "x\n"); err != nil {
		t.Fatal(err)
	}
	if _, ok := unreadBytes(f); ok {
		t.Fatal("unreadBytes ok for a regular file")
	}
	start := time.Now()
	waitStdoutRead(f, time.Minute)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("waited %v for a file", d)
	}
}
