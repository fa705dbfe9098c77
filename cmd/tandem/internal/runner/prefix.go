package runner

import (
	"bytes"
	"io"
	"sync"
)

// Console serialises lines from several processes onto one writer.
type Console struct {
	mu  sync.Mutex
	out io.Writer
}

// NewConsole writes to out.
func NewConsole(out io.Writer) *Console { return &Console{out: out} }

// Printf writes a whole message.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// prefixWriter writes each complete line to a Console with a prefix;
// a partial last line waits for its newline (or Flush).
type prefixWriter struct {
	c      *Console
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

func newPrefixWriter(c *Console, prefix string) *prefixWriter {
	return &prefixWriter{c: c, prefix: []byte(prefix)}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		out = append(out, w.prefix...)
		out = append(out, w.buf[:i+1]...)
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line: do not hold it forever
		out = append(append(append(out, w.prefix...), w.buf...), '\n')
		w.buf = nil
	}
	if len(out) > 0 {
		_, _ = w.c.Write(out)
	}
	return len(p), nil
}

// Flush writes a pending partial line.
func (w *prefixWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_, _ = w.c.Write(append(append(append([]byte{}, w.prefix...), w.buf...), '\n'))
		w.buf = nil
	}
}
