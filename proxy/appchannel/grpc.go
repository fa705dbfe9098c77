package appchannel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"

	"github.com/tandemrun/tandem/internal/rawio"
)

// App protocols (--app-protocol) served by gRPC.
const (
	ProtocolGRPC  = "grpc"
	ProtocolGRPCS = "grpcs"
)

// apiTokenKey carries the app API token to a gRPC app.
const apiTokenKey = "dapr-api-token"

// DefaultMaxMessageSize is gRPC's and Dapr's default message limit (4 MiB).
const DefaultMaxMessageSize = 4 << 20

// GRPCConfig configures the channel to a gRPC app.
type GRPCConfig struct {
	// Address is --app-channel-address; "" means 127.0.0.1.
	Address string
	// Port is --app-port.
	Port int
	// Protocol is "grpc" (default) or "grpcs" (TLS without verification).
	Protocol string
	// APIToken is APP_API_TOKEN: when set, every unary call to the app
	// (OnInvoke, OnTopicEvent, ListTopicSubscriptions ...) carries it as
	// metadata dapr-api-token.
	APIToken string
	// MaxMessageSize bounds request and response messages in bytes
	// (--dapr-http-max-request-size); 0 means DefaultMaxMessageSize.
	MaxMessageSize int
}

// GRPC calls a gRPC app's AppCallback service over one shared connection,
// and for invocations (Invoke) over as many more as needed to keep at most
// StreamsPerConn calls in flight on each: an app's server may cap
// concurrent streams per connection (often at 100), and calls over the cap
// would wait in line, as daprd's pool avoids.
type GRPC struct {
	conn     *grpc.ClientConn
	apiToken string
	maxSize  int
	dial     func() (*grpc.ClientConn, error)

	mu   sync.Mutex
	pool []*pooledConn // pool[0] is conn
}

// StreamsPerConn is how many invocations the channel keeps in flight on one
// connection to the app before it opens another.
const StreamsPerConn = 100

type pooledConn struct {
	cc       *grpc.ClientConn
	client   runtimev1.AppCallbackClient
	inflight int // under GRPC.mu
}

var _ invoke.AppChannel = (*GRPC)(nil)

// NewGRPC returns a channel to the gRPC app described by cfg. It does not
// connect yet: the connection is made on first use and kept.
func NewGRPC(cfg GRPCConfig) (*GRPC, error) {
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("app channel: invalid app port %d: set --app-port to the port the app listens on", cfg.Port)
	}
	addr := cfg.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	creds := insecure.NewCredentials()
	switch cfg.Protocol {
	case "", ProtocolGRPC:
	case ProtocolGRPCS:
		creds = credentials.NewTLS(&tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // Dapr's grpcs app protocol does not verify the local app.
			MinVersion:         tls.VersionTLS12,
		})
	default:
		return nil, fmt.Errorf("app channel: protocol %q is not gRPC: use grpc or grpcs (or the HTTP channel for http)", cfg.Protocol)
	}
	maxSize := cfg.MaxMessageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	opts := []grpc.DialOption{
		grpc.WithContextDialer(rawio.Dial),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxSize), grpc.MaxCallSendMsgSize(maxSize)),
	}
	if cfg.APIToken != "" {
		// On the connection, so no caller of the app (invocation, topic
		// events, subscription discovery, bindings) can forget it.
		opts = append(opts, grpc.WithChainUnaryInterceptor(withAPIToken(cfg.APIToken)),
			grpc.WithChainStreamInterceptor(withAPITokenStream(cfg.APIToken)))
	}
	dial := func() (*grpc.ClientConn, error) {
		// passthrough: the address is an IP or host name dialled as is.
		conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(addr, strconv.Itoa(cfg.Port)), opts...)
		if err != nil {
			return nil, fmt.Errorf("app channel: gRPC client for %s:%d: %w", addr, cfg.Port, err)
		}
		return conn, nil
	}
	conn, err := dial()
	if err != nil {
		return nil, err
	}
	return &GRPC{
		conn:     conn,
		apiToken: cfg.APIToken,
		maxSize:  maxSize,
		dial:     dial,
		pool:     []*pooledConn{{cc: conn, client: runtimev1.NewAppCallbackClient(conn)}},
	}, nil
}

// acquire returns a connection with room for one more call, opening one if
// all are full; release it when the call is over.
func (g *GRPC) acquire() (*pooledConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pool) == 0 {
		return nil, status.Error(codes.Unavailable, "app channel is closed")
	}
	for _, c := range g.pool {
		if c.inflight < StreamsPerConn {
			c.inflight++
			return c, nil
		}
	}
	cc, err := g.dial()
	if err != nil {
		return nil, err
	}
	c := &pooledConn{cc: cc, client: runtimev1.NewAppCallbackClient(cc), inflight: 1}
	g.pool = append(g.pool, c)
	return c, nil
}

func (g *GRPC) release(c *pooledConn) {
	g.mu.Lock()
	c.inflight--
	g.mu.Unlock()
}

// withAPIToken makes every unary call carry token as the only value of
// dapr-api-token, as daprd sends APP_API_TOKEN with each call to the app.
// A value already in the outgoing metadata (one an event or a caller
// brought along) is replaced, never sent beside it.
func withAPIToken(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(tokenContext(ctx, token), method, req, reply, cc, opts...)
	}
}

// withAPITokenStream is withAPIToken for streams: the gRPC proxy forwards
// other apps' calls to the app on them, and daprd sends the token there too.
func withAPITokenStream(token string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(tokenContext(ctx, token), desc, cc, method, opts...)
	}
}

// tokenContext returns ctx with token as the only dapr-api-token value.
func tokenContext(ctx context.Context, token string) context.Context {
	switch v := metadata.ValueFromOutgoingContext(ctx, apiTokenKey); {
	case len(v) == 0:
		return metadata.AppendToOutgoingContext(ctx, apiTokenKey, token)
	case len(v) != 1 || v[0] != token:
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Set(apiTokenKey, token)
		return metadata.NewOutgoingContext(ctx, md)
	}
	return ctx
}

// Conn returns the connection to the app. Every call made on it, unary or
// stream (the gRPC proxy's, forwarding another app's call), carries
// APP_API_TOKEN, as in daprd.
func (g *GRPC) Conn() *grpc.ClientConn { return g.conn }

// Close closes the connection.
func (g *GRPC) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, c := range g.pool {
		errs = append(errs, c.cc.Close())
	}
	g.pool = nil
	return errors.Join(errs...)
}

// traceBinKey is the binary trace context metadata of gRPC calls.
const traceBinKey = "grpc-trace-bin"

// Invoke calls AppCallback/OnInvoke. The app's gRPC status, success or not,
// is the Response's Status (code < 100); an error is returned only when
// the request cannot be built or read.
func (g *GRPC) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	data, err := readBody(req, g.maxSize)
	if err != nil {
		return nil, err
	}
	msg := req.Message.GetMessage()
	in := &commonv1.InvokeRequest{
		Method:        msg.GetMethod(),
		ContentType:   msg.GetContentType(),
		HttpExtension: msg.GetHttpExtension(),
		Data:          &anypb.Any{TypeUrl: msg.GetData().GetTypeUrl(), Value: data},
	}
	md := headers.ToGRPC(req.Message.GetMetadata())
	if _, ok := md[traceBinKey]; !ok {
		// daprd always sets grpc-trace-bin on calls to the app, empty
		// for a call that came without trace context.
		md[traceBinKey] = []string{""}
	}
	if g.apiToken != "" {
		// The connection's interceptor would add it; set in metadata being
		// built anyway, it costs the call no extra context.
		md.Set(apiTokenKey, g.apiToken)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)

	var header, trailer metadata.MD
	pc, err := g.acquire()
	if err != nil {
		return nil, err
	}
	out, callErr := pc.client.OnInvoke(ctx, in, grpc.Header(&header), grpc.Trailer(&trailer))
	g.release(pc)
	st := status.Convert(callErr)
	resp := &internalsv1.InternalInvokeResponse{
		Status: &internalsv1.Status{
			Code:    int32(st.Code()), //nolint:gosec // gRPC codes are small.
			Message: st.Message(),
			Details: st.Proto().GetDetails(),
		},
		Headers:  headers.FromGRPC(header),
		Trailers: headers.FromGRPC(trailer),
		Message:  &commonv1.InvokeResponse{ContentType: out.GetContentType()},
	}
	if tu := out.GetData().GetTypeUrl(); tu != "" {
		// Keep the type URL for gRPC callers; the bytes go in Body.
		resp.Message.Data = &anypb.Any{TypeUrl: tu}
	}
	// A body whose length is known leaves the callee with its end in one
	// write (the lean transport flushes a body of unknown length after
	// every read).
	body := out.GetData().GetValue()
	return &invoke.Response{
		Message:       resp,
		Body:          invoke.NewMemBody(body),
		ContentLength: int64(len(body)),
	}, nil
}

// readBody reads the whole request body, refusing more than limit bytes.
func readBody(req *invoke.Request, limit int) ([]byte, error) {
	if req.Body == nil || req.ContentLength == 0 {
		return nil, nil
	}
	if req.ContentLength > int64(limit) {
		return nil, status.Errorf(codes.ResourceExhausted, "request body of %d bytes is larger than the gRPC app limit of %d bytes", req.ContentLength, limit)
	}
	size := 512
	if req.ContentLength > 0 {
		size = int(req.ContentLength)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(req.Body, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if n > int64(limit) {
		return nil, status.Errorf(codes.ResourceExhausted, "request body is larger than the gRPC app limit of %d bytes", limit)
	}
	return buf.Bytes(), nil
}
