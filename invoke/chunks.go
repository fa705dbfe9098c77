package invoke

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
)

// ChunkSize is the largest payload of one CallLocalStream message.
const ChunkSize = 32 << 10

// chunkBufs recycles chunk buffers. gRPC has marshalled a message by the
// time SendMsg returns, so a buffer is free again right after.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// sendChunks reads r and hands each piece to send with consecutive sequence
// numbers starting at seq. It returns at the end of r (nil) or on the first
// error; errStreamEnded means the peer stopped listening.
func sendChunks(r io.Reader, seq uint64, send func(*commonv1.StreamPayload) error) error {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	payload := &commonv1.StreamPayload{}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			payload.Data, payload.Seq = buf[:n], seq
			seq++
			if serr := send(payload); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &bodyReadError{err}
		}
	}
}

// readFirstChunk reads the piece of r that rides in the leading message.
// done reports that r is exhausted.
func readFirstChunk(r io.Reader, buf []byte) (n int, done bool, err error) {
	if r == nil {
		return 0, true, nil
	}
	n, err = r.Read(buf)
	if errors.Is(err, io.EOF) {
		return n, true, nil
	}
	if err != nil {
		return n, false, &bodyReadError{err}
	}
	return n, false, nil
}

// bodyReadError marks a failure of the local body, as opposed to the stream.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// chunkReader reassembles a CallLocalStream payload: next returns the next
// message's payload (nil for none) or io.EOF at the end of the stream. It
// checks the sequence numbers. It pulls from the stream on demand, so no
// goroutine or pipe sits between the network and the reader.
type chunkReader struct {
	next    func() (*commonv1.StreamPayload, error)
	pending []byte
	seq     uint64
	err     error
	closed  atomic.Bool
	onEnd   func() // called once when the stream ends or the reader is closed
	endOnce sync.Once
}

// accept takes a payload (from the leading message or next) into pending.
func (c *chunkReader) accept(p *commonv1.StreamPayload) error {
	if p == nil {
		return nil
	}
	if p.GetSeq() != c.seq {
		return fmt.Errorf("invalid sequence number received: %d (expected: %d)", p.GetSeq(), c.seq)
	}
	c.seq++
	c.pending = p.GetData()
	return nil
}

func (c *chunkReader) fill() bool {
	if c.closed.Load() && c.err == nil {
		c.err, c.pending = errBodyClosed, nil
	}
	for len(c.pending) == 0 {
		if c.err != nil {
			return false
		}
		p, err := c.next()
		if err == nil {
			err = c.accept(p)
		}
		if err != nil {
			c.err = err
			c.end()
			return false
		}
	}
	return true
}

var errBodyClosed = errors.New("body closed")

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !c.fill() {
		return 0, c.err
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// WriteTo hands chunks to w without an intermediate buffer (io.Copy uses it).
func (c *chunkReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for c.fill() {
		n, err := w.Write(c.pending)
		total += int64(n)
		c.pending = c.pending[n:]
		if err != nil {
			return total, err
		}
	}
	if errors.Is(c.err, io.EOF) {
		return total, nil
	}
	return total, c.err
}

func (c *chunkReader) end() {
	c.endOnce.Do(func() {
		if c.onEnd != nil {
			c.onEnd()
		}
	})
}

// Close stops the stream; later Reads fail.
func (c *chunkReader) Close() error {
	c.closed.Store(true)
	c.end()
	return nil
}
