package invoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/identity"
)

// AuthorizeFunc decides whether caller may make req. A non-nil error is
// returned to the caller as codes.PermissionDenied.
type AuthorizeFunc func(ctx context.Context, caller identity.App, req *Request) error

// ServerOptions configure a Server.
type ServerOptions struct {
	// AppID and Namespace are this sidecar's app (the callee).
	AppID     string
	Namespace string
	// App delivers requests to the local app.
	App AppChannel
	// Authorize, if set, is consulted for every call (access control).
	Authorize AuthorizeFunc
	// Actors, if set, serves CallActor.
	Actors ActorHost
	// LeanHook, if set, observes the calls served over the lean transport
	// as the internal gRPC server's interceptors observe gRPC calls.
	LeanHook LeanServerHook
	Log      *slog.Logger
}

// Server is the callee side of service invocation: it implements Dapr's
// internal ServiceInvocation gRPC service on the internal port.
type Server struct {
	appID     string
	namespace string
	app       AppChannel
	authorize AuthorizeFunc
	actors    ActorHost
	leanHook  LeanServerHook
	log       *slog.Logger
}

var _ internalsv1.ServiceInvocationServer = (*Server)(nil)

// NewServer checks o and returns a Server.
func NewServer(o ServerOptions) (*Server, error) {
	if o.AppID == "" || o.Namespace == "" {
		return nil, errors.New("invoke server: this sidecar's app id and namespace are required")
	}
	if o.App == nil {
		return nil, errors.New("invoke server: an app channel is required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{appID: o.AppID, namespace: o.Namespace, app: o.App, authorize: o.Authorize, actors: o.Actors, leanHook: o.LeanHook, log: o.Log}, nil
}

// Register adds the ServiceInvocation service to g.
func (s *Server) Register(g *grpc.Server) {
	internalsv1.RegisterServiceInvocationServer(g, s)
}

// admit establishes who is calling, stamps the caller/callee metadata
// (replacing whatever the caller sent) and runs Authorize.
func (s *Server) admit(ctx context.Context, req *Request) error {
	// Again here, before access control: a caller need not be a sidecar
	// that normalized it.
	if err := normalizeRequest(req); err != nil {
		return err
	}
	in := req.Message
	if in.Metadata == nil {
		in.Metadata = make(map[string]*internalsv1.ListStringValue, 4)
	}
	caller, secure, err := PeerApp(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "caller identity: %v", err)
	}
	if !secure {
		// mTLS is off: like daprd, believe what the caller says.
		caller = identity.App{
			AppID:     firstMeta(in.Metadata, CallerAppIDKey),
			Namespace: firstMeta(in.Metadata, CallerNamespaceKey),
		}
		if caller.Namespace == "" && caller.AppID != "" {
			caller.Namespace = s.namespace
		}
	}
	if caller.AppID != "" {
		setMeta(in.Metadata, CallerAppIDKey, caller.AppID)
		setMeta(in.Metadata, CallerNamespaceKey, caller.Namespace)
	}
	setMeta(in.Metadata, CalleeAppIDKey, s.appID)
	copyIncomingTrace(ctx, in.Metadata)
	if s.authorize != nil {
		if err := s.authorize(ctx, caller, req); err != nil {
			// The hook's message is Dapr's own denial text; send it as is.
			return status.Error(codes.PermissionDenied, err.Error())
		}
	}
	return nil
}

// copyIncomingTrace moves the trace context the caller's sidecar sent as
// gRPC metadata into the request metadata the app channel forwards.
func copyIncomingTrace(ctx context.Context, md map[string]*internalsv1.ListStringValue) {
	if firstMeta(md, traceparentKey) != "" {
		return
	}
	in, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return
	}
	tp := ""
	if v := in[traceparentKey]; len(v) > 0 {
		tp = v[0]
	} else if v := in[traceBinKey]; len(v) > 0 {
		tp, _ = TraceParentFromBin([]byte(v[0]))
	}
	if tp == "" {
		return
	}
	setMeta(md, traceparentKey, tp)
	if v := in[tracestateKey]; len(v) > 0 && firstMeta(md, tracestateKey) == "" {
		setMeta(md, tracestateKey, v[0])
	}
}

// appError turns an app channel failure into a status for the caller.
func (s *Server) appError(method string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	s.log.Debug("app channel failed", "method", method, "error", err)
	return status.Errorf(codes.Internal, "error invoking app channel: %v", err)
}

// invokeApp delivers req to the app. A caller that asked for server-sent
// events (Accept: text/event-stream) gets them only from a 2xx HTTP answer;
// any other answer is refused as daprd refuses it, with codes.Internal
// "no response received from stream", since an event-stream client cannot
// read it.
func (s *Server) invokeApp(ctx context.Context, req *Request) (*Response, error) {
	resp, err := s.app.Invoke(ctx, req)
	if err != nil || !wantsEventStream(req.Message.GetMetadata()) {
		return resp, err
	}
	if code := resp.Message.GetStatus().GetCode(); resp.IsHTTP() && code >= 200 && code < 300 {
		return resp, nil
	}
	_ = resp.Body.Close()
	return nil, status.Error(codes.Internal, "error invoking app channel: no response received from stream")
}

// wantsEventStream reports whether the request's Accept header is exactly
// text/event-stream (daprd's test; a list of types is not a stream request).
func wantsEventStream(md map[string]*internalsv1.ListStringValue) bool {
	for k, v := range md {
		if strings.EqualFold(k, "accept") && len(v.GetValues()) > 0 {
			return strings.EqualFold(strings.TrimSpace(v.GetValues()[0]), "text/event-stream")
		}
	}
	return false
}

// CallLocal serves a unary invocation: the body is in message.data.
func (s *Server) CallLocal(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	m := in.GetMessage()
	if m == nil {
		return nil, status.Error(codes.InvalidArgument, "invalid internal invoke request: message is missing")
	}
	var data []byte
	if d := m.Data; d != nil {
		data, d.Value = d.Value, nil
		if d.TypeUrl == "" {
			m.Data = nil
		}
	}
	req := &Request{Message: in, ContentLength: int64(len(data))}
	if len(data) > 0 {
		req.Body = NewMemBody(data)
	}
	if err := s.admit(ctx, req); err != nil {
		return nil, err
	}
	resp, err := s.invokeApp(ctx, req)
	if err != nil {
		return nil, s.appError(m.GetMethod(), err)
	}
	defer resp.Body.Close()
	body, err := readAllSized(resp.Body, resp.ContentLength)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read response of app %q: %v", s.appID, err)
	}
	out := resp.Message
	if out == nil {
		return nil, status.Error(codes.Internal, "app channel returned a response without a message")
	}
	if out.Message == nil {
		out.Message = &commonv1.InvokeResponse{}
	}
	if out.Message.Data == nil {
		out.Message.Data = &anypb.Any{}
	}
	out.Message.Data.Value = body
	return out, nil
}

// readAllSized reads r to the end, allocating once when its size is known:
// r has a Len method, or size > 0 as the app announced it (a body shorter
// than announced is taken as it is).
func readAllSized(r io.Reader, size int64) ([]byte, error) {
	if l, ok := r.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	if size <= 0 || size > maxPresize {
		return io.ReadAll(r)
	}
	b := make([]byte, size)
	n, err := io.ReadFull(r, b)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// Shorter than announced (an app's wrong Content-Length):
			// what came is the answer, as in daprd.
			return b[:n], nil
		}
		return nil, err
	}
	// All size bytes are in; the reader should be at its end now (a
	// one-byte probe, so the common case allocates nothing more).
	var one [1]byte
	for {
		m, err := r.Read(one[:])
		if m > 0 {
			rest, err := io.ReadAll(r)
			if err != nil {
				return nil, err
			}
			return append(append(b, one[0]), rest...), nil
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// maxPresize caps what an announced size may allocate up front.
const maxPresize = 16 << 20

// CallLocalStream serves a streamed invocation: the leading message holds
// the request, then payload chunks follow; the response goes back the same
// way.
func (s *Server) CallLocalStream(ss internalsv1.ServiceInvocation_CallLocalStreamServer) error {
	var first internalsv1.InternalInvokeRequestStream
	if err := ss.RecvMsg(&first); err != nil {
		return err
	}
	in := first.GetRequest()
	if in.GetMessage() == nil {
		return status.Error(codes.InvalidArgument, "invalid internal invoke request: request does not contain the required fields in the leading chunk")
	}
	if d := in.Message.Data; d != nil && d.TypeUrl == "" {
		in.Message.Data = nil // the body is in the chunks
	}
	ctx := ss.Context()
	body := &chunkReader{}
	if err := body.accept(first.GetPayload()); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var chunk internalsv1.InternalInvokeRequestStream
	body.next = func() (*commonv1.StreamPayload, error) {
		chunk.Reset()
		if err := ss.RecvMsg(&chunk); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("receive request body: %w", err)
		}
		if chunk.Request != nil {
			return nil, errors.New("request metadata found in non-leading chunk")
		}
		return chunk.Payload, nil
	}
	// The app may stop reading before the end; once this handler returns
	// the stream must not be read any more.
	defer body.Close()

	req := &Request{Message: in, Body: body, ContentLength: -1}
	if err := s.admit(ctx, req); err != nil {
		return err
	}
	resp, err := s.invokeApp(ctx, req)
	if err != nil {
		return s.appError(in.GetMessage().GetMethod(), err)
	}
	defer resp.Body.Close()
	if resp.Message == nil {
		return status.Error(codes.Internal, "app channel returned a response without a message")
	}
	if d := resp.Message.GetMessage().GetData(); d != nil {
		d.Value = nil
	}

	bp := chunkBufs.Get().(*[]byte)
	n, done, rerr := readFirstChunk(resp.Body, *bp)
	if rerr != nil {
		chunkBufs.Put(bp)
		return status.Errorf(codes.Internal, "read response of app %q: %v", s.appID, rerr)
	}
	head := &internalsv1.InternalInvokeResponseStream{Response: resp.Message}
	if n > 0 {
		head.Payload = &commonv1.StreamPayload{Data: (*bp)[:n], Seq: 0}
	}
	err = ss.SendMsg(head)
	chunkBufs.Put(bp)
	if err != nil || done {
		return err
	}
	seq := uint64(0)
	if n > 0 {
		seq = 1
	}
	msg := &internalsv1.InternalInvokeResponseStream{}
	err = sendChunks(resp.Body, seq, func(p *commonv1.StreamPayload) error {
		msg.Payload = p
		return ss.SendMsg(msg)
	})
	var be *bodyReadError
	if errors.As(err, &be) {
		// Abort rather than end cleanly, so the caller sees a failure and
		// not a truncated body.
		return status.Errorf(codes.Internal, "read response of app %q: %v", s.appID, be.err)
	}
	return err
}

// CallActor hands another sidecar's actor call to the actor host; without
// one (no placement configured) it is Unimplemented.
func (s *Server) CallActor(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	if s.actors == nil {
		return nil, errActors
	}
	return s.actors.CallActor(ctx, in)
}

// CallActorReminder hands a reminder another sidecar was triggered for
// (daprd sends those of actors this host owns so) to the actor host.
func (s *Server) CallActorReminder(ctx context.Context, in *internalsv1.Reminder) (*emptypb.Empty, error) {
	if s.actors == nil {
		return nil, errActors
	}
	if err := s.actors.CallActorReminder(ctx, in); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// CallActorStream is not supported: Tandem's actor calls are unary.
func (s *Server) CallActorStream(*internalsv1.InternalInvokeRequest, internalsv1.ServiceInvocation_CallActorStreamServer) error {
	return errActors
}

var errActors = status.Error(codes.Unimplemented, "actors are not enabled on this sidecar (tandemd): start it with --placement-host-address")

// ActorHost serves the actor calls other sidecars route to this one (the
// actors package's Runtime).
type ActorHost interface {
	CallActor(ctx context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error)
	// CallActorReminder fires a reminder of an actor this host owns.
	CallActorReminder(ctx context.Context, in *internalsv1.Reminder) error
}
