package invoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke/headwire"
	"github.com/tandemrun/tandem/invoke/transport"
)

// The lean transport (transport.LeanALPN) carries the same
// InternalInvokeRequest and InternalInvokeResponse as Dapr's gRPC, with
// message.data left out: the head is the message in protobuf, and the
// body travels as it is, in the transport's data frames.

// LeanClientHook observes a call this sidecar makes over the lean
// transport as the pool's gRPC interceptors observe a CallLocal or
// CallLocalStream (observe implements it: the same metrics and spans).
// method is the gRPC method the call stands for. It is called before the
// request's head is encoded, so it may put trace context into in's
// metadata, and returns the call's context; answered (if not nil) is called
// once the answer's head or the call's error has come, ended (if not nil)
// once the call is over: the answer's body read to its end (nil), failed
// (its error) or closed before its end (Canceled).
type LeanClientHook func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest) (
	_ context.Context, answered func(*internalsv1.InternalInvokeResponse, error), ended func(error))

// LeanServerHook observes a call served over the lean transport as the
// internal gRPC server's interceptors observe a CallLocal,
// CallLocalStream or CallActor (method): serve runs the call (admission,
// the app or the actor, the answer sent) and returns the answer's head
// (nil if none went out) and its error.
type LeanServerHook func(ctx context.Context, method string, in *internalsv1.InternalInvokeRequest,
	serve func(context.Context) (*internalsv1.InternalInvokeResponse, error)) (*internalsv1.InternalInvokeResponse, error)

// leanMethod is the gRPC method a call stands for: what invoke would use
// over gRPC (CallLocal for a small body of known size whose answer is not
// streamed, else CallLocalStream).
func leanMethod(req *Request) (string, byte) {
	if !req.StreamResponse && req.ContentLength >= 0 && req.ContentLength <= UnaryLimit {
		return internalsv1.ServiceInvocation_CallLocal_FullMethodName, 0
	}
	return internalsv1.ServiceInvocation_CallLocalStream_FullMethodName, transport.FlagStream
}

// headBufs recycles the buffers request heads are marshalled into.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// invokeLean makes the call over the lean transport when the peer at addr
// speaks it. handled is false when it does not (a daprd): then the caller
// uses gRPC, at addr, which a retry may have changed.
func (iv *Client) invokeLean(ctx context.Context, appID, ns, addr string, req *Request) (resp *Response, at string, handled bool, err error) {
	if err := req.holdSmall(); err != nil {
		return nil, addr, true, err
	}
	replay, canReplay := replayable(req)
	lc, err := iv.leanConn(ctx, addr, canReplay)
	if lc == nil && err == nil {
		return nil, addr, false, nil
	}
	stale, failed := false, false
	for {
		if err == nil {
			resp, err = iv.callLean(ctx, appID, lc, req)
			if err == nil {
				return resp, addr, true, nil
			}
		}
		if !canReplay || ctx.Err() != nil || status.Code(err) != codes.Unavailable {
			return nil, addr, true, wrapCallErr(appID, addr, err)
		}
		switch {
		case transport.IsStale(err) && !stale:
			// An idle connection the peer had closed: it never saw the
			// call. Its siblings are likely closed too.
			stale = true
			iv.pool.DropIdle(addr)
		case !failed:
			failed = true
			if fm, ok := iv.resolver.(failureMarker); ok {
				fm.MarkFailed(addr)
			}
			next, rerr := iv.resolve(ctx, appID, ns)
			if rerr != nil {
				return nil, addr, true, fmt.Errorf("%w (re-resolving after failure: %v)", wrapCallErr(appID, addr, err), rerr)
			}
			iv.log.Debug("retrying invocation after transport failure", "app_id", appID, "address", addr, "retry_address", next, "error", err)
			addr = next
		default:
			return nil, addr, true, wrapCallErr(appID, addr, err)
		}
		if replay != nil {
			req.Body = NewMemBody(replay)
		}
		lc, err = iv.leanConn(ctx, addr, canReplay)
		if lc == nil && err == nil {
			return nil, addr, false, nil
		}
	}
}

// connectAttempts is how many times leanConn tries to connect, with
// connectPause times the attempt's number between two.
const (
	connectAttempts = 3
	connectPause    = 10 * time.Millisecond
)

// leanConn gets a connection to addr, trying again when connecting failed:
// nothing of the call was sent, so even a streamed body can wait (a callee
// that stopped accepting as it restarts resets the connections it had
// accepted but not served; its replacement takes the next ones).
func (iv *Client) leanConn(ctx context.Context, addr string, replayable bool) (*transport.LeanConn, error) {
	get := iv.pool.Lean
	if replayable {
		get = iv.pool.LeanReplayable
	}
	lc, err := get(ctx, addr)
	for attempt := 1; attempt < connectAttempts && err != nil && ctx.Err() == nil && status.Code(err) == codes.Unavailable; attempt++ {
		iv.log.Debug("connecting to sidecar failed; trying again", "address", addr, "error", err)
		t := time.NewTimer(time.Duration(attempt) * connectPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		lc, err = get(ctx, addr)
	}
	return lc, err
}

// callLean makes one call on lc: the head and a body in memory leave in
// one write; a longer body is streamed by a goroutine while the answer is
// read, so an app that answers while still reading cannot deadlock.
func (iv *Client) callLean(ctx context.Context, appID string, lc *transport.LeanConn, req *Request) (*Response, error) {
	method, flags := leanMethod(req)
	if iv.leanHook == nil {
		return iv.callLeanOnce(ctx, appID, lc, req, flags, nil)
	}
	ctx, answered, ended := iv.leanHook(ctx, method, req.Message)
	resp, err := iv.callLeanOnce(ctx, appID, lc, req, flags, ended)
	if answered != nil {
		var out *internalsv1.InternalInvokeResponse
		if resp != nil {
			out = resp.Message
		}
		answered(out, err)
	}
	if err != nil && ended != nil {
		ended(err)
	}
	return resp, err
}

// callLeanOnce makes the call; the answer's body calls ended when it is
// over.
func (iv *Client) callLeanOnce(ctx context.Context, appID string, lc *transport.LeanConn, req *Request, flags byte, ended func(error)) (*Response, error) {
	m := req.Message.Message
	if m.Data != nil {
		saved := m.Data.Value
		m.Data.Value = nil
		defer func() { m.Data.Value = saved }()
	}
	hb := headBufs.Get().(*[]byte)
	head, err := headwire.AppendRequest((*hb)[:0], req.Message)
	if err != nil {
		headBufs.Put(hb)
		lc.Discard()
		return nil, status.Errorf(codes.Internal, "encode request for app %q: %v", appID, err)
	}
	call, err := lc.Start(ctx, req.ContentLength, flags, head)
	*hb = head[:0]
	headBufs.Put(hb)
	if err != nil {
		return nil, err
	}
	if err := sendLeanBody(call, req); err != nil {
		call.Close()
		return nil, err
	}
	rh, err := call.RecvHead()
	if err != nil {
		call.Close()
		return nil, err
	}
	a := new(leanAnswer)
	out := &a.msg
	if err := headwire.UnmarshalResponseInto(rh, out, &a.parts); err != nil {
		call.Close()
		return nil, fmt.Errorf("invoke app %q: undecodable response head: %w", appID, err)
	}
	if out.GetStatus() == nil {
		call.Close()
		return nil, fmt.Errorf("invoke app %q: response does not contain the required fields in the leading chunk", appID)
	}
	if d := out.GetMessage().GetData(); d != nil {
		d.Value = nil
	}
	a.body = leanBody{call: call, ended: ended}
	a.resp = Response{Message: out, Body: &a.body}
	return &a.resp, nil
}

// leanAnswer is what an answer over the lean transport is made of, in one
// allocation.
type leanAnswer struct {
	resp  Response
	msg   internalsv1.InternalInvokeResponse
	parts headwire.ResponseParts
	body  leanBody
}

// leanServed is what a call served over the lean transport is made of, in
// one allocation.
type leanServed struct {
	req   Request
	in    internalsv1.InternalInvokeRequest
	parts headwire.RequestParts
	mem   MemBody
}

// sendLeanBody writes the request body: all of it and the end when it is
// in memory or fits the first chunk, else the first chunk now and the rest
// from a goroutine.
func sendLeanBody(call *transport.ClientCall, req *Request) error {
	if mb, ok := req.Body.(*MemBody); ok {
		if b, whole := mb.unread(); whole {
			if _, err := call.Write(b); err != nil {
				return err
			}
			return call.CloseSend()
		}
	}
	bp := chunkBufs.Get().(*[]byte)
	n, done, rerr := readFirstChunk(req.Body, *bp)
	if rerr != nil {
		chunkBufs.Put(bp)
		call.AbortSend(rerr)
		return rerr
	}
	_, err := call.Write((*bp)[:n])
	chunkBufs.Put(bp)
	if err != nil {
		return err
	}
	if done {
		return call.CloseSend()
	}
	if err := call.Flush(); err != nil {
		return err
	}
	go sendLeanRest(call, req.Body)
	return nil
}

// sendLeanRest streams the rest of a request body, a chunk per write. A
// failure to read it aborts the call (the connection is closed) rather
// than ending the body cleanly.
func sendLeanRest(call *transport.ClientCall, body io.Reader) {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := call.Write(buf[:n]); werr != nil {
				return
			}
			if werr := call.Flush(); werr != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			_ = call.CloseSend()
			return
		}
		if err != nil {
			call.AbortSend(&bodyReadError{err})
			return
		}
	}
}

// leanBody is the answer's body on the lean transport.
type leanBody struct {
	call *transport.ClientCall
	// ended, if set, is the hook's: called once when the body is over.
	ended func(error)
}

func (b *leanBody) Read(p []byte) (int, error) {
	n, err := b.call.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

// Ready reports whether the next Read returns at once (see
// transport.ClientCall.Ready).
func (b *leanBody) Ready() bool { return b.call.Ready() }

// end reports the end of the body to the hook, once: io.EOF as success.
func (b *leanBody) end(err error) {
	if b.ended == nil {
		return
	}
	f := b.ended
	b.ended = nil
	if err == io.EOF {
		err = nil
	}
	f(err)
}

// WriteTo copies the body to w with a pooled buffer (io.Copy uses it).
func (b *leanBody) WriteTo(w io.Writer) (int64, error) {
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	var total int64
	for {
		n, err := b.call.Read(*bp)
		if err != nil {
			b.end(err)
		}
		if n > 0 {
			m, werr := w.Write((*bp)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (b *leanBody) Close() error {
	if b.ended != nil { // the error only when someone will see it
		b.end(status.Error(codes.Canceled, "the answer's body was closed before its end"))
	}
	return b.call.Close()
}

// ServeLean serves one call of the lean transport: an invocation with the
// same admission, access control and app channel as CallLocal and
// CallLocalStream, or an actor call (transport.FlagActor) as CallActor;
// observed as those are (the server's LeanHook).
func (s *Server) ServeLean(ctx context.Context, call *transport.ServerCall) error {
	if call.Flags&transport.FlagActor != 0 {
		return s.serveLeanActor(ctx, call)
	}
	served := new(leanServed)
	in := &served.in
	if err := headwire.UnmarshalRequestInto(call.Head, in, &served.parts); err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid internal invoke request: %v", err)
	}
	if in.GetMessage() == nil {
		return status.Error(codes.InvalidArgument, "invalid internal invoke request: message is missing")
	}
	if d := in.Message.Data; d != nil && d.TypeUrl == "" {
		in.Message.Data = nil // the body is in the data frames
	}
	if s.leanHook == nil {
		_, err := s.serveLean(ctx, call, served)
		return err
	}
	method := internalsv1.ServiceInvocation_CallLocal_FullMethodName
	if call.Flags&transport.FlagStream != 0 || call.ContentLength < 0 || call.ContentLength > UnaryLimit {
		method = internalsv1.ServiceInvocation_CallLocalStream_FullMethodName
	}
	_, err := s.leanHook(ctx, method, in, func(ctx context.Context) (*internalsv1.InternalInvokeResponse, error) {
		return s.serveLean(ctx, call, served)
	})
	return err
}

// serveLean runs a call; it returns the answer's head once it went out.
func (s *Server) serveLean(ctx context.Context, call *transport.ServerCall, served *leanServed) (*internalsv1.InternalInvokeResponse, error) {
	in, req := &served.in, &served.req
	*req = Request{Message: in, Body: call, ContentLength: call.ContentLength}
	if req.ContentLength > UnaryLimit {
		// As over gRPC, where a body this size is streamed (CallLocalStream).
		req.ContentLength = -1
	}
	if n := call.ContentLength; n >= 0 && n <= UnaryLimit {
		// A small body is read whole first, as CallLocal has it: the app
		// channel sends it with its length, and the end of the call's
		// frames is in, so the transport can notice the caller leaving.
		data, err := req.Bytes()
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		req.Body = nil
		if data != nil {
			served.mem.set(data)
			req.Body = &served.mem
		}
		var one [1]byte
		if m, err := call.Read(one[:]); m > 0 || err != io.EOF {
			return nil, status.Errorf(codes.InvalidArgument, "request body is not the %d bytes announced", n)
		}
	}
	if err := s.admit(ctx, req); err != nil {
		return nil, err
	}
	resp, err := s.invokeApp(ctx, req)
	if err != nil {
		return nil, s.appError(in.GetMessage().GetMethod(), err)
	}
	defer resp.Body.Close()
	out := resp.Message
	if out == nil {
		return nil, status.Error(codes.Internal, "app channel returned a response without a message")
	}
	if d := out.GetMessage().GetData(); d != nil {
		d.Value = nil
	}
	hb := headBufs.Get().(*[]byte)
	head, err := headwire.AppendResponse((*hb)[:0], out)
	if err == nil {
		err = call.SendHead(head)
	}
	*hb = head[:0]
	headBufs.Put(hb)
	if err != nil {
		return nil, err
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	lr, hasLen := resp.Body.(interface{ Len() int })
	var total int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			total += int64(n)
			if _, err := call.Write(buf[:n]); err != nil {
				return out, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return out, nil
		}
		if rerr != nil {
			// Abort rather than end cleanly, so the caller sees a failure
			// and not a truncated body.
			return out, status.Errorf(codes.Internal, "read response of app %q: %v", s.appID, rerr)
		}
		// Write out now unless the body is known to be at its end (the
		// next Read returns EOF at once): a streamed answer's chunks go as
		// they come, a small answer leaves in one write with its end.
		atEnd := (resp.ContentLength > 0 && total >= resp.ContentLength) || (hasLen && lr.Len() == 0)
		if !atEnd {
			if err := call.Flush(); err != nil {
				return out, err
			}
		}
	}
}

var _ transport.LeanHandler = (*Server)(nil)
