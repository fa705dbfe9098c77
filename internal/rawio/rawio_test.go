package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns a wrapped client connection and the server's end.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := Listen(ln)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			t.Error(err)
			accepted <- nil
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := Wrap(raw)
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	for _, conn := range []net.Conn{c, s} {
		if _, plain := conn.(*net.TCPConn); plain == Enabled {
			t.Fatalf("wrapped connection is a %T (raw reads and writes in this build: %v)", conn, Enabled)
		}
	}
	return c, s
}

func TestEcho(t *testing.T) {
	c, s := pair(t)
	go func() { _, _ = io.Copy(s, s) }()
	for _, size := range []int{1, 1000, 64 << 10} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if n, err := c.Write(msg); n != size || err != nil {
			t.Fatalf("write %d: %d, %v", size, n, err)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read back %d bytes: %v", size, err)
		}
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}
}

// TestLargeWrite: a write larger than the socket buffers waits for the
// peer to read (EAGAIN, then the poller) and goes out whole, while a
// read runs on another goroutine.
func TestLargeWrite(t *testing.T) {
	c, s := pair(t)
	big := make([]byte, 32<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	done := make(chan error, 1)
	go func() {
		n, err := c.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	// A concurrent read on the writing connection.
	readErr := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		readErr <- err
	}()
	got := make([]byte, len(big))
	for off := 0; off < len(got); {
		time.Sleep(time.Millisecond) // a slow reader
		n, err := s.Read(got[off:min(off+1<<20, len(got))])
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("large write garbled")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("concurrent read: %v", err)
	}
}

func TestErrors(t *testing.T) {
	c, s := pair(t)
	// Deadline: a timeout net.Error that is os.ErrDeadlineExceeded.
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past deadline: %v", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "tcp" || oe.Addr == nil || errors.As(oe.Err, new(*net.OpError)) {
		t.Errorf("read past deadline: %#v is not a read OpError (with one level)", err)
	}
	if Enabled {
		// net/http's server ends a background read so on every request: the
		// RawConn's error is the only allocation.
		if n := testing.AllocsPerRun(20, func() { _, _ = c.Read(b[:]) }); n > 1 {
			t.Errorf("read past deadline: %v allocations, want 1", n)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if Enabled {
		if n := testing.AllocsPerRun(20, func() {
			if !IdleOpen(c) {
				t.Fatal("IdleOpen: an idle open connection counts as closed")
			}
		}); n != 0 {
			t.Errorf("IdleOpen: %v allocations, want 0", n)
		}
	}
	// The peer closes: EOF, as io.EOF itself.
	s.Close()
	if _, err := c.Read(b[:]); err != io.EOF {
		t.Errorf("read after the peer closed: %v, want io.EOF", err)
	}
	// Writes to a closed peer end in a reset or broken pipe.
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = c.Write(bytes.Repeat([]byte("x"), 4096))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Errorf("write to a closed peer: %v", werr)
	}
	// Our own Close: net.ErrClosed.
	c.Close()
	if _, err := c.Read(b[:]); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

// TestCloseWakesRead: a Read waiting for data returns when the
// connection is closed.
func TestCloseWakesRead(t *testing.T) {
	c, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the read")
	}
}

func TestIdleOpen(t *testing.T) {
	c, s := pair(t)
	if !IdleOpen(c) {
		t.Fatal("open idle connection reported closed")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !IdleOpen(c) }, "unasked-for bytes")
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatal(err)
	}
	if !IdleOpen(c) {
		t.Fatal("peek took the byte, or the connection is reported closed once read")
	}
	s.Close()
	waitFor(t, func() bool { return !IdleOpen(c) }, "the peer closing")
	c.Close()
	if IdleOpen(c) {
		t.Error("closed connection reported open")
	}
}

func waitFor(t *testing.T, f func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !f(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s not seen by IdleOpen", what)
		}
		time.Sleep(time.Millisecond)
	}
}
