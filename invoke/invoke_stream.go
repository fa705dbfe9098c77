package invoke

import (
	"context"
	"errors"
	"fmt"
	"io"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var callLocalStreamDesc = &internalsv1.ServiceInvocation_ServiceDesc.Streams[0]

// invokeStream sends req over CallLocalStream. The leading message carries
// the request and the first chunk; the rest of the body is sent by a
// goroutine while the response is read, so an app that answers while still
// reading (an echo) cannot deadlock the two flow-control windows.
func (iv *Client) invokeStream(ctx context.Context, appID, addr string, req *Request) (*Response, error) {
	cc, err := iv.pool.Get(addr)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	cs, err := cc.NewStream(sctx, callLocalStreamDesc, internalsv1.ServiceInvocation_CallLocalStream_FullMethodName)
	if err != nil {
		cancel(nil)
		if status.Code(err) == codes.Unavailable {
			iv.pool.Discard(addr, cc)
		}
		return nil, wrapCallErr(appID, addr, err)
	}

	// The body travels as chunks, never in message.data.
	m := req.Message.Message
	var savedData []byte
	if m.Data != nil {
		savedData, m.Data.Value = m.Data.Value, nil
		defer func() { m.Data.Value = savedData }()
	}

	bp := chunkBufs.Get().(*[]byte)
	n, done, rerr := readFirstChunk(req.Body, *bp)
	if rerr != nil {
		chunkBufs.Put(bp)
		cancel(rerr)
		return nil, rerr
	}
	first := &internalsv1.InternalInvokeRequestStream{Request: req.Message}
	if n > 0 {
		first.Payload = &commonv1.StreamPayload{Data: (*bp)[:n], Seq: 0}
	}
	serr := cs.SendMsg(first)
	chunkBufs.Put(bp)
	// io.EOF from SendMsg means the stream ended; RecvMsg tells why.
	if serr != nil && !errors.Is(serr, io.EOF) {
		cancel(serr)
		return nil, wrapCallErr(appID, addr, serr)
	}
	switch {
	case serr != nil:
	case done:
		_ = cs.CloseSend()
	default:
		seq := uint64(0)
		if n > 0 {
			seq = 1
		}
		go sendRequestRest(cs, req.Body, seq, cancel)
	}

	var head internalsv1.InternalInvokeResponseStream
	if err := cs.RecvMsg(&head); err != nil {
		cancel(nil)
		if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return nil, cause
		}
		if status.Code(err) == codes.Unavailable {
			iv.pool.Discard(addr, cc)
		}
		return nil, wrapCallErr(appID, addr, err)
	}
	if head.GetResponse().GetStatus() == nil {
		cancel(nil)
		return nil, fmt.Errorf("invoke app %q at %s: response does not contain the required fields in the leading chunk", appID, addr)
	}
	body := &chunkReader{onEnd: func() { cancel(nil) }}
	if err := body.accept(head.GetPayload()); err != nil {
		cancel(nil)
		return nil, err
	}
	var msg internalsv1.InternalInvokeResponseStream
	body.next = func() (*commonv1.StreamPayload, error) {
		msg.Reset()
		if err := cs.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return nil, cause
			}
			return nil, fmt.Errorf("receive response body from app %q: %w", appID, err)
		}
		if msg.Response != nil {
			return nil, errors.New("response metadata found in non-leading chunk")
		}
		return msg.Payload, nil
	}
	res := head.Response
	if d := res.GetMessage().GetData(); d != nil {
		d.Value = nil
	}
	return &Response{Message: res, Body: body}, nil
}

// sendRequestRest streams the remainder of body and half-closes the stream.
// A failure to read the body cancels the call rather than ending it cleanly,
// so the callee never takes a truncated body for a whole one.
func sendRequestRest(cs grpc.ClientStream, body io.Reader, seq uint64, cancel context.CancelCauseFunc) {
	msg := &internalsv1.InternalInvokeRequestStream{}
	err := sendChunks(body, seq, func(p *commonv1.StreamPayload) error {
		msg.Payload = p
		return cs.SendMsg(msg)
	})
	switch {
	case err == nil:
		_ = cs.CloseSend()
	case errors.Is(err, io.EOF):
		// The callee finished early; its status arrives on RecvMsg.
	default:
		cancel(err)
	}
}
