package grpcproxy

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/resiliency"
)

// StreamKey is the metadata key ("dapr-stream") with which a caller marks a
// proxied call as a stream, as in daprd: a resiliency policy then applies
// only to opening the call, never to what follows. Without it a proxied call
// is taken for a unary one, and a policy covers it whole: timeouts, retries
// (its one request message is kept and sent again) and the breaker.
const StreamKey = "dapr-stream"

// errStreamRetry is returned when a call taken for unary (no dapr-stream)
// turns out to send more than one message: it cannot be replayed.
var errStreamRetry = status.Error(codes.FailedPrecondition,
	"grpc proxy: a retry policy applies to this call, but the caller sent more than one message; set the \"dapr-stream: true\" metadata on streaming calls")

// isStream reports whether the caller marked the call as a stream.
func isStream(md metadata.MD) bool {
	switch strings.ToLower(first(md, StreamKey)) {
	case "1", "t", "true", "y", "yes", "on":
		return true
	}
	return false
}

// source reads the caller's messages once, for every attempt of a call that
// may be retried. The first message is kept (a unary call's only one) and
// replayed to each attempt; any further ones are handed live to the attempt
// in progress and mark the call as not replayable.
type source struct {
	ss grpc.ServerStream

	firstReady chan struct{} // closed once first is set
	first      []byte
	next       chan *frame   // the second message on
	ended      chan struct{} // closed when the caller's side ends; err says how
	err        error
	mu         sync.Mutex
	more       bool // a second message came
}

func newSource(ss grpc.ServerStream) *source {
	s := &source{ss: ss, firstReady: make(chan struct{}), next: make(chan *frame), ended: make(chan struct{})}
	go s.read()
	return s
}

func (s *source) read() {
	defer close(s.ended)
	for n := 0; ; n++ {
		f := &frame{}
		if err := s.ss.RecvMsg(f); err != nil {
			s.err = err
			return
		}
		if n == 0 {
			// Copy out of gRPC's pooled buffers: the copy is sent again on
			// every attempt.
			s.first = f.data.Materialize()
			f.data.Free()
			close(s.firstReady)
			continue
		}
		s.mu.Lock()
		s.more = true
		s.mu.Unlock()
		select {
		case s.next <- f:
		case <-s.ss.Context().Done():
			f.data.Free()
			s.err = s.ss.Context().Err()
			return
		}
	}
}

// replayable reports whether the caller has sent at most one message.
func (s *source) replayable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.more
}

// sendTo sends the caller's messages to one attempt's upstream call cs:
// the first again, then whatever follows; it half-closes at the caller's
// end. ctx is the attempt's.
func (s *source) sendTo(ctx context.Context, cs grpc.ClientStream) error {
	select {
	case <-s.firstReady:
	case <-s.ended:
	case <-ctx.Done():
		return ctx.Err()
	case <-cs.Context().Done():
		return cs.Context().Err()
	}
	select {
	case <-s.firstReady: // checked apart: a select picks among ready cases at random
		if err := cs.SendMsg(&frame{data: mem.BufferSlice{mem.SliceBuffer(s.first)}}); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	default:
	}
	for {
		select {
		case f := <-s.next:
			if err := cs.SendMsg(f); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		case <-s.ended:
			if errors.Is(s.err, io.EOF) {
				return cs.CloseSend()
			}
			return s.err
		case <-ctx.Done():
			return ctx.Err()
		case <-cs.Context().Done():
			return cs.Context().Err()
		}
	}
}

// withPolicy runs a proxied call under p: open starts the upstream call on
// the attempt's context, and each attempt replays the caller's request.
// Only a call that sent at most one message and relayed nothing back yet
// is retried; a stream (dapr-stream) gets the policy only for opening.
func withPolicy(ss grpc.ServerStream, p *resiliency.Policy, stream bool,
	open func(ctx context.Context) (grpc.ClientStream, context.CancelFunc, error),
) error {
	ctx := ss.Context()
	if stream {
		type opened struct {
			cs     grpc.ClientStream
			cancel context.CancelFunc
		}
		o, err := resiliency.Do(ctx, p, func(context.Context) (opened, error) {
			// The upstream call must outlive the attempt's context: it is
			// opened on the caller's.
			cs, cancel, err := open(ctx)
			return opened{cs, cancel}, err
		}, resiliency.Discard(func(v any) {
			if o, ok := v.(opened); ok && o.cancel != nil {
				o.cancel()
			}
		}))
		if err != nil {
			return err
		}
		return pipe(ss, o.cs, o.cancel)
	}

	src := newSource(ss)
	w := &onceWriter{ServerStream: ss}
	_, err := resiliency.Do(ctx, p, func(actx context.Context) (struct{}, error) {
		cs, cancel, err := open(actx)
		if err != nil {
			return struct{}{}, err
		}
		err = pipeFrom(w, cs, cancel, func(cs grpc.ClientStream) error { return src.sendTo(actx, cs) })
		switch {
		case err == nil:
			return struct{}{}, nil
		case w.wrote() || ctx.Err() != nil:
			// Part of the answer reached the caller: it cannot be taken back.
			return struct{}{}, resiliency.Permanent(err)
		case !src.replayable():
			if status.Code(err) == codes.OK || status.Code(err) == codes.Unknown {
				err = errStreamRetry
			}
			return struct{}{}, resiliency.Permanent(err)
		}
		return struct{}{}, err
	})
	if err == nil {
		return nil
	}
	// Hand the caller the upstream's own status, not the policy's wrapping.
	var pe interface{ GRPCStatus() *status.Status }
	if errors.As(err, &pe) {
		return pe.GRPCStatus().Err()
	}
	return err
}

// onceWriter is the caller's stream as the attempts see it: it notes
// whether anything has been sent back, after which no retry may happen.
type onceWriter struct {
	grpc.ServerStream
	mu   sync.Mutex
	sent bool
}

func (w *onceWriter) SendMsg(m any) error {
	w.mu.Lock()
	w.sent = true
	w.mu.Unlock()
	return w.ServerStream.SendMsg(m)
}

func (w *onceWriter) wrote() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}
