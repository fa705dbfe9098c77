package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// LeanALPN is the TLS application protocol of the lean transport between
// Tandem sidecars. A Tandem client offers it (and LeanALPNv2) before "h2";
// a Tandem server prefers it; a daprd on either end offers only "h2", so
// the pair falls back to Dapr's gRPC.
//
// Version 3 added actor calls (FlagActor); its frames are version 2's. A
// connection that negotiated LeanALPNv2 (a peer of the previous Tandem)
// carries service invocation only, and that pair keeps gRPC's CallActor
// for actors. Version 2 added the flags byte to the request head; a
// version 1 peer negotiates h2 with a later one, so the pair falls back to
// gRPC rather than misreading heads.
const LeanALPN = "tandem-invoke/3"

// LeanALPNv2 is the previous version of the lean transport, still offered
// and accepted: service invocation only, no FlagActor.
const LeanALPNv2 = "tandem-invoke/2"

// leanProtos are the application protocols a Tandem end offers, preferred
// first.
var leanProtos = []string{LeanALPN, LeanALPNv2, "h2"}

// Frames of the lean transport. Every frame is a 5-byte header, the type
// and the payload's length (big endian), then the payload:
//
//	head    request: 8-byte timeout in ns (0: none), 8-byte body size
//	        (-1: unknown), 1 byte of flags (FlagStream), then the
//	        caller's head (invoke's encoding); response: the callee's
//	        head
//	data    body bytes, as they are
//	end     the sender's body is complete (empty payload)
//	status  the call failed: a google.rpc.Status (callee to caller only)
//	goaway  the callee closes the connection after this (empty payload):
//	        sent between calls when it stops or the connection idled too
//	        long; a call that crossed it is still served, then the
//	        connection closes
//
// A connection carries one call at a time, so each side reads its own
// frames on its own goroutine: the caller sends head, data…, end and reads
// head, data…, end (or status); then the connection is free for the next
// call. Cancelling a call closes its connection.
const (
	frameHead   byte = 1
	frameData   byte = 2
	frameEnd    byte = 3
	frameStatus byte = 4
	frameGoAway byte = 5

	frameHeaderLen = 5
	// headPrefixLen is the timeout, body size and flags before a request
	// head.
	headPrefixLen = 17
	// dataFrameMax is the largest data frame a writer makes; a body
	// larger than that goes as several frames.
	dataFrameMax = 64 << 10
	// writeBufferMax is what the writer buffers before a write: a small
	// call's frames leave in one write.
	writeBufferMax = dataFrameMax + 4<<10
)

// Flags of a request head.
const (
	// FlagStream says the caller streams the call (over gRPC it would be a
	// CallLocalStream, not a CallLocal), so the callee observes it under
	// that method.
	FlagStream byte = 1
	// FlagActor says the call is an actor call (what gRPC's CallActor
	// carries), not a service invocation; only on a LeanALPN connection
	// (LeanConn.Actors), never on a LeanALPNv2 one, whose callee would take
	// it for an invocation of its app.
	FlagActor byte = 2
)

// errProtocol marks a malformed frame stream; the connection is closed.
var errProtocol = errors.New("lean transport: protocol error")

// frameReader reads frames from a buffered connection.
type frameReader struct {
	br *bufio.Reader
	// max bounds a head or status payload (MaxMessageSize).
	max int
	// buf holds the last head or status payload; reused.
	buf []byte
	// remain is what is left of the current data frame's payload.
	remain int
}

// next reads a frame header. For head and status frames it returns the
// payload (valid until the next call); for data frames the payload is
// read with readData.
func (r *frameReader) next() (typ byte, payload []byte, err error) {
	if r.remain > 0 {
		if _, err := r.br.Discard(r.remain); err != nil {
			return 0, nil, err
		}
		r.remain = 0
	}
	// Peek and Discard, not ReadFull into an array: the array would
	// escape to the heap through io.Reader, one allocation per frame.
	h, err := r.br.Peek(frameHeaderLen)
	if err != nil {
		if len(h) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF // as ReadFull: a partial header
		}
		return 0, nil, err
	}
	typ, n := h[0], int(binary.BigEndian.Uint32(h[1:]))
	_, _ = r.br.Discard(frameHeaderLen) // buffered: cannot fail
	switch typ {
	case frameData:
		if n > dataFrameMax {
			return 0, nil, fmt.Errorf("%w: data frame of %d bytes (max %d)", errProtocol, n, dataFrameMax)
		}
		r.remain = n
		return typ, nil, nil
	case frameEnd, frameGoAway:
		if n != 0 {
			return 0, nil, fmt.Errorf("%w: frame type %d with a %d-byte payload", errProtocol, typ, n)
		}
		return typ, nil, nil
	case frameHead, frameStatus:
		if n > r.max {
			return 0, nil, fmt.Errorf("%w: %d-byte head (max %d)", errProtocol, n, r.max)
		}
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		r.buf = r.buf[:n]
		if _, err := io.ReadFull(r.br, r.buf); err != nil {
			return 0, nil, err
		}
		return typ, r.buf, nil
	}
	return 0, nil, fmt.Errorf("%w: unknown frame type %d", errProtocol, typ)
}

// readData reads from the current data frame.
func (r *frameReader) readData(p []byte) (int, error) {
	if len(p) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.br.Read(p)
	r.remain -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// bodyReader reads one side's body: data frames up to end. On the caller's
// side a status frame ends the body with that error.
type bodyReader struct {
	fr   *frameReader
	done bool
	err  error
	// owner sees a failure of the connection (not the end of the body).
	// An interface, not a func: a method value or closure would be one
	// more allocation per call.
	owner connFailer
}

// connFailer is the call a bodyReader reads for: connFailed is told of a
// connection failure and returns the error the body reports.
type connFailer interface {
	connFailed(error) error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return 0, io.EOF
		}
		if b.fr.remain > 0 {
			n, err := b.fr.readData(p)
			if err != nil {
				b.fail(err)
				if n == 0 {
					continue
				}
			}
			return n, nil
		}
		typ, payload, err := b.fr.next()
		switch {
		case err != nil:
			if err == io.EOF {
				// The connection ended inside the body: never a clean end.
				err = io.ErrUnexpectedEOF
			}
			b.fail(err)
		case typ == frameData:
		case typ == frameEnd:
			b.done = true
		case typ == frameStatus:
			b.err = decodeStatus(payload)
		default:
			b.fail(fmt.Errorf("%w: frame type %d inside a body", errProtocol, typ))
		}
	}
}

// ready reports whether the next Read returns without waiting for the
// network: some data, the body's end or its failure is already buffered.
// It never blocks.
func (b *bodyReader) ready() bool {
	if b.err != nil || b.done {
		return true
	}
	br := b.fr.br
	n := br.Buffered()
	if b.fr.remain > 0 {
		return n > 0
	}
	if n < frameHeaderLen {
		return false
	}
	h, err := br.Peek(frameHeaderLen) // buffered: no read
	if err != nil {
		return false
	}
	size := int(binary.BigEndian.Uint32(h[1:]))
	switch h[0] {
	case frameData:
		// An empty data frame is followed by another frame: not known.
		return size > 0 && n > frameHeaderLen
	case frameEnd, frameGoAway:
		return true
	case frameHead, frameStatus:
		return n >= frameHeaderLen+size
	}
	return true // an unknown frame type fails at once
}

func (b *bodyReader) fail(err error) {
	if b.owner != nil {
		err = b.owner.connFailed(err)
	}
	b.err = err
}

// decodeStatus turns a status frame into the error it carries.
func decodeStatus(payload []byte) error {
	var st status.Status
	if err := proto.Unmarshal(payload, &st); err != nil {
		return grpcstatus.Errorf(codes.Internal, "lean transport: undecodable status frame: %v", err)
	}
	if st.Code == 0 {
		return grpcstatus.Error(codes.Internal, "lean transport: status frame with code OK")
	}
	return grpcstatus.ErrorProto(&st)
}

// frameWriter buffers frames and writes them in as few writes as it can:
// a whole small call in one.
type frameWriter struct {
	w   io.Writer
	buf *[]byte
}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferMax); return &b }}

func (w *frameWriter) b() []byte {
	if w.buf == nil {
		w.buf = writeBufs.Get().(*[]byte)
	}
	return *w.buf
}

func (w *frameWriter) header(typ byte, n int) {
	b := w.b()
	b = append(b, typ, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	*w.buf = b
}

// frame appends a frame with payload.
func (w *frameWriter) frame(typ byte, payload []byte) error {
	if len(w.b())+frameHeaderLen+len(payload) > writeBufferMax {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.header(typ, len(payload))
	*w.buf = append(*w.buf, payload...)
	return nil
}

// data appends p as data frames, writing out whenever the buffer fills.
func (w *frameWriter) data(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), dataFrameMax)
		if err := w.frame(frameData, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// flush writes what is buffered and returns the buffer to the pool.
func (w *frameWriter) flush() error {
	if w.buf == nil {
		return nil
	}
	var err error
	if len(*w.buf) > 0 {
		_, err = w.w.Write(*w.buf)
	}
	*w.buf = (*w.buf)[:0]
	writeBufs.Put(w.buf)
	w.buf = nil
	return err
}

// discard drops what is buffered.
func (w *frameWriter) discard() {
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
		writeBufs.Put(w.buf)
		w.buf = nil
	}
}
