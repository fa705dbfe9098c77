package invoke

import (
	"context"
	"encoding/binary"
	"errors"
	"io"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke/headwire"
	"github.com/tandemrun/tandem/invoke/transport"
)

// Actor calls over the lean transport (transport.FlagActor, on a
// transport.LeanALPN connection) carry what gRPC's CallActor carries, with
// the message's data left out of the protobuf:
//
//	request   head: the InternalInvokeRequest (actor, method, metadata
//	          with the caller's stamp and the reentrancy ID), its
//	          message.data without value (its type URL, if any, stays);
//	          body: message.data's value, its size in the transport's head
//	answer    head: the answer body's size (8 bytes, big endian), then the
//	          InternalInvokeResponse without message.data's value; body:
//	          that value
//	failure   the status CallActor returns, as over gRPC
//
// The callee hands the request to the same ActorHost.CallActor the gRPC
// service does, so turn locks, activation, reminders and the answer's
// errors are the same.

const callActorMethod = internalsv1.ServiceInvocation_CallActor_FullMethodName

// emptyAny stands for a message.data whose value goes in the body; only
// read (marshalled), never changed.
var emptyAny = &anypb.Any{}

// CallActor sends req, an actor call for the host at addr (what gRPC's
// CallActor carries), over the lean transport. handled is false when the
// pool does not speak it with that peer (plaintext, a daprd, a Tandem of
// transport.LeanALPNv2): then make the call with gRPC's CallActor. Errors
// are gRPC status errors, the owner's as it returned them. req is only
// read.
func CallActor(ctx context.Context, pool *transport.Pool, addr string, req *internalsv1.InternalInvokeRequest) (resp *internalsv1.InternalInvokeResponse, handled bool, err error) {
	for stale := false; ; stale = true {
		lc, err := pool.LeanActor(ctx, addr)
		if lc == nil && err == nil {
			return nil, false, nil
		}
		if err != nil {
			return nil, true, err
		}
		resp, err = callActorLean(ctx, lc, pool.MaxMessageSize(), req)
		if err != nil && !stale && ctx.Err() == nil && transport.IsStale(err) {
			// An idle connection the peer had closed (a restart): it never
			// saw the call, which goes again on a fresh one.
			pool.DropIdle(addr)
			continue
		}
		return resp, true, err
	}
}

// callActorLean makes one actor call on lc: a body up to the write
// buffer's size leaves in one write with its head.
func callActorLean(ctx context.Context, lc *transport.LeanConn, maxSize int, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	head := req
	var data []byte
	if m := req.GetMessage(); m != nil {
		data = m.GetData().GetValue()
		hm := &commonv1.InvokeRequest{Method: m.Method, ContentType: m.ContentType, HttpExtension: m.HttpExtension}
		switch d := m.Data; {
		case d == nil:
		case d.TypeUrl == "":
			hm.Data = emptyAny
		default:
			hm.Data = &anypb.Any{TypeUrl: d.TypeUrl}
		}
		head = &internalsv1.InternalInvokeRequest{Ver: req.Ver, Actor: req.Actor, Message: hm, Metadata: req.Metadata}
	}
	hb := headBufs.Get().(*[]byte)
	b, err := headwire.AppendRequest((*hb)[:0], head)
	if err != nil {
		headBufs.Put(hb)
		lc.Discard()
		return nil, status.Errorf(codes.Internal, "encode actor call: %v", err)
	}
	call, err := lc.Start(ctx, int64(len(data)), transport.FlagActor, b)
	*hb = b[:0]
	headBufs.Put(hb)
	if err != nil {
		return nil, err
	}
	defer call.Close()
	if len(data) > 0 {
		if _, err := call.Write(data); err != nil {
			return nil, err
		}
	}
	if err := call.CloseSend(); err != nil {
		return nil, err
	}
	rh, err := call.RecvHead()
	if err != nil {
		return nil, err
	}
	if len(rh) < 8 {
		return nil, status.Errorf(codes.Internal, "lean transport: actor answer's head of %d bytes", len(rh))
	}
	n := binary.BigEndian.Uint64(rh)
	out := new(internalsv1.InternalInvokeResponse)
	if err := headwire.UnmarshalResponse(rh[8:], out); err != nil {
		return nil, status.Errorf(codes.Internal, "lean transport: undecodable actor answer: %v", err)
	}
	if n > uint64(maxSize) {
		// As gRPC refuses a message over its MaxCallRecvMsgSize.
		return nil, status.Errorf(codes.ResourceExhausted, "actor answer of %d bytes is larger than the limit of %d", n, maxSize)
	}
	body, err := readLeanBody(call, int64(n))
	if err != nil {
		return nil, err
	}
	if d := out.GetMessage().GetData(); d != nil {
		d.Value = body
	} else if len(body) > 0 {
		if out.Message == nil {
			out.Message = &commonv1.InvokeResponse{}
		}
		out.Message.Data = &anypb.Any{Value: body}
	}
	return out, nil
}

// readLeanBody reads a body of n bytes to its end: the end must follow
// them.
func readLeanBody(r io.Reader, n int64) ([]byte, error) {
	var body []byte
	if n > 0 {
		body = make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, status.Errorf(codes.Internal, "lean transport: body shorter than the %d bytes announced", n)
			}
			return nil, err
		}
	}
	var one [1]byte
	m, err := r.Read(one[:])
	if m > 0 {
		return nil, status.Errorf(codes.Internal, "lean transport: body longer than the %d bytes announced", n)
	}
	if err != io.EOF {
		return nil, err
	}
	return body, nil
}

// serveLeanActor serves an actor call of the lean transport as CallActor
// serves one over gRPC, observed as the internal server observes CallActor.
func (s *Server) serveLeanActor(ctx context.Context, call *transport.ServerCall) error {
	if s.actors == nil {
		return errActors
	}
	in := new(internalsv1.InternalInvokeRequest)
	if err := headwire.UnmarshalRequest(call.Head, in); err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid actor call: %v", err)
	}
	n := call.ContentLength
	switch {
	case n < 0:
		return status.Error(codes.InvalidArgument, "invalid actor call: body of unknown size")
	case n > int64(call.MaxMessageSize):
		return status.Errorf(codes.ResourceExhausted, "actor call of %d bytes is larger than the limit of %d", n, call.MaxMessageSize)
	}
	data, err := readLeanBody(call, n)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "read actor call's body: %v", status.Convert(err).Message())
	}
	if m := in.GetMessage(); m != nil && (m.Data != nil || len(data) > 0) {
		if m.Data == nil {
			m.Data = &anypb.Any{}
		}
		m.Data.Value = data
	} else if len(data) > 0 {
		return status.Error(codes.InvalidArgument, "invalid actor call: a body without a message")
	}
	if s.leanHook == nil {
		_, err := s.serveActor(ctx, call, in)
		return err
	}
	_, err = s.leanHook(ctx, callActorMethod, in, func(ctx context.Context) (*internalsv1.InternalInvokeResponse, error) {
		return s.serveActor(ctx, call, in)
	})
	return err
}

// serveActor runs the call and sends the answer's head and body.
func (s *Server) serveActor(ctx context.Context, call *transport.ServerCall, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	out, err := s.actors.CallActor(ctx, in)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, status.Error(codes.Internal, "actor host returned no answer")
	}
	var body []byte
	d := out.GetMessage().GetData()
	if d != nil {
		body, d.Value = d.Value, nil
	}
	hb := headBufs.Get().(*[]byte)
	b := binary.BigEndian.AppendUint64((*hb)[:0], uint64(len(body)))
	b, err = headwire.AppendResponse(b, out)
	if d != nil {
		d.Value = body
	}
	if err == nil {
		err = call.SendHead(b)
	}
	*hb = b[:0]
	headBufs.Put(hb)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "send actor answer: %v", err)
	}
	if len(body) > 0 {
		if _, err := call.Write(body); err != nil {
			return out, err
		}
	}
	return out, nil
}
