package observe

import (
	"context"
	"strconv"
	"sync"
	"time"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Dapr's internal service invocation methods and metadata keys.
const (
	callLocalMethod       = internalsv1.ServiceInvocation_CallLocal_FullMethodName
	callLocalStreamMethod = internalsv1.ServiceInvocation_CallLocalStream_FullMethodName
	callActorMethod       = internalsv1.ServiceInvocation_CallActor_FullMethodName
	callerAppIDKey        = "dapr-caller-app-id"
	calleeAppIDKey        = "dapr-callee-app-id"
)

// typeUnary is the type label of service invocations (daprd has no other
// for them).
const typeUnary = "unary"

type appTypeKey struct {
	app, typ string
}

type appStatusKey struct {
	app, typ string
	status   int32
}

type resRecv struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// invokeMetrics are Dapr's runtime/service_invocation metrics. Label
// names follow Dapr: on the caller dst_app_id is the callee, and the
// response is labelled src_app_id (the app that sent it).
type invokeMetrics struct {
	reqSent    *prometheus.CounterVec
	resRecv    *prometheus.CounterVec
	resLatency *prometheus.HistogramVec
	reqRecv    *prometheus.CounterVec
	resSent    *prometheus.CounterVec
	appID      string

	sent     *boundCache[appTypeKey, prometheus.Counter]
	recv     *boundCache[appStatusKey, resRecv]
	received *boundCache[string, prometheus.Counter]
	answered *boundCache[appStatusKey, prometheus.Counter]
}

func newInvokeMetrics(appID string, buckets []float64, maxSeries int) *invokeMetrics {
	im := &invokeMetrics{
		appID: appID,
		reqSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_runtime_service_invocation_req_sent_total", Help: "Service invocation requests sent to other apps' sidecars.",
		}, []string{"app_id", "dst_app_id", "type"}),
		resRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_runtime_service_invocation_res_recv_total", Help: "Service invocation responses received from other apps' sidecars.",
		}, []string{"app_id", "src_app_id", "status", "type"}),
		resLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dapr_runtime_service_invocation_res_recv_latency_ms", Help: "Time from sending a service invocation to receiving its response, in milliseconds.", Buckets: buckets,
		}, []string{"app_id", "src_app_id", "status"}),
		reqRecv: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_runtime_service_invocation_req_recv_total", Help: "Service invocation requests received from other apps' sidecars.",
		}, []string{"app_id", "src_app_id"}),
		resSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_runtime_service_invocation_res_sent_total", Help: "Service invocation responses sent back to other apps' sidecars.",
		}, []string{"app_id", "dst_app_id", "status"}),
	}
	im.sent = newBoundCache(maxSeries, func(k appTypeKey) prometheus.Counter {
		return im.reqSent.WithLabelValues(appID, k.app, k.typ)
	}, func() prometheus.Counter { return im.reqSent.WithLabelValues(appID, overflowLabel, overflowLabel) })
	im.recv = newBoundCache(maxSeries, func(k appStatusKey) resRecv {
		st := strconv.Itoa(int(k.status))
		return resRecv{
			count:   im.resRecv.WithLabelValues(appID, k.app, st, k.typ),
			latency: im.resLatency.WithLabelValues(appID, k.app, st),
		}
	}, func() resRecv {
		return resRecv{
			count:   im.resRecv.WithLabelValues(appID, overflowLabel, overflowLabel, overflowLabel),
			latency: im.resLatency.WithLabelValues(appID, overflowLabel, overflowLabel),
		}
	})
	im.received = newBoundCache(maxSeries, func(app string) prometheus.Counter {
		return im.reqRecv.WithLabelValues(appID, app)
	}, func() prometheus.Counter { return im.reqRecv.WithLabelValues(appID, overflowLabel) })
	im.answered = newBoundCache(maxSeries, func(k appStatusKey) prometheus.Counter {
		return im.resSent.WithLabelValues(appID, k.app, strconv.Itoa(int(k.status)))
	}, func() prometheus.Counter { return im.resSent.WithLabelValues(appID, overflowLabel, overflowLabel) })
	return im
}

func (im *invokeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{im.reqSent, im.resRecv, im.resLatency, im.reqRecv, im.resSent}
}

func firstValue(md map[string]*internalsv1.ListStringValue, key string) string {
	if v := md[key]; v != nil && len(v.Values) > 0 {
		return v.Values[0]
	}
	return ""
}

// responseStatus is the status label of an invocation outcome: the app's
// status code when a response came back, else the gRPC code number.
func responseStatus(resp *internalsv1.InternalInvokeResponse, err error) int32 {
	if err == nil && resp.GetStatus() != nil {
		return resp.GetStatus().GetCode()
	}
	return int32(status.Code(err)) //nolint:gosec // gRPC codes are small.
}

func (im *invokeMetrics) clientUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	in, ok := req.(*internalsv1.InternalInvokeRequest)
	if method != callLocalMethod || !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	dst := firstValue(in.GetMetadata(), calleeAppIDKey)
	start := im.requestSent(dst)
	err := invoker(ctx, method, req, reply, cc, opts...)
	out, _ := reply.(*internalsv1.InternalInvokeResponse)
	im.responseReceived(dst, responseStatus(out, err), start)
	return err
}

// requestSent records a call to dst going out and returns its start.
func (im *invokeMetrics) requestSent(dst string) time.Time {
	im.sent.get(appTypeKey{app: dst, typ: typeUnary}).Inc()
	return time.Now()
}

// responseReceived records the answer (or failure) of a call to dst.
func (im *invokeMetrics) responseReceived(dst string, status int32, start time.Time) {
	r := im.recv.get(appStatusKey{app: dst, typ: typeUnary, status: status})
	r.count.Inc()
	r.latency.Observe(float64(time.Since(start)) / float64(time.Millisecond))
}

func (im *invokeMetrics) clientStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != callLocalStreamMethod {
		return streamer(ctx, desc, cc, method, opts...)
	}
	start := time.Now()
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &meteredClientStream{ClientStream: cs, im: im, start: start}, nil
}

// meteredClientStream learns the callee from the first request chunk and
// the status from the first response chunk. A CallLocalStream is one
// invocation, counted as type "unary" as daprd's direct messaging does
// (its "streaming" type is only the gRPC proxy's streams).
type meteredClientStream struct {
	grpc.ClientStream
	im       *invokeMetrics
	start    time.Time
	sendOnce sync.Once
	recvOnce sync.Once
	mu       sync.Mutex // dst: sends and receives may run on different goroutines
	dst      string
}

func (s *meteredClientStream) SendMsg(m any) error {
	s.sendOnce.Do(func() {
		var dst string
		if c, ok := m.(*internalsv1.InternalInvokeRequestStream); ok {
			dst = firstValue(c.GetRequest().GetMetadata(), calleeAppIDKey)
		}
		s.mu.Lock()
		s.dst = dst
		s.mu.Unlock()
		s.im.sent.get(appTypeKey{app: dst, typ: typeUnary}).Inc()
	})
	return s.ClientStream.SendMsg(m)
}

func (s *meteredClientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.recvOnce.Do(func() {
		var resp *internalsv1.InternalInvokeResponse
		if c, ok := m.(*internalsv1.InternalInvokeResponseStream); ok && err == nil {
			resp = c.GetResponse()
		}
		s.mu.Lock()
		dst := s.dst
		s.mu.Unlock()
		r := s.im.recv.get(appStatusKey{app: dst, typ: typeUnary, status: responseStatus(resp, err)})
		r.count.Inc()
		r.latency.Observe(float64(time.Since(s.start)) / float64(time.Millisecond))
	})
	return err
}

func (im *invokeMetrics) serverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	in, ok := req.(*internalsv1.InternalInvokeRequest)
	if info.FullMethod != callLocalMethod || !ok {
		return handler(ctx, req)
	}
	resp, err := handler(ctx, req)
	out, _ := resp.(*internalsv1.InternalInvokeResponse)
	im.served(in, out, err)
	return resp, err
}

// served records a call served: after the handler, whose admission has
// replaced the caller metadata with the authenticated caller.
func (im *invokeMetrics) served(in *internalsv1.InternalInvokeRequest, out *internalsv1.InternalInvokeResponse, err error) {
	src := firstValue(in.GetMetadata(), callerAppIDKey)
	im.received.get(src).Inc()
	im.answered.get(appStatusKey{app: src, status: responseStatus(out, err)}).Inc()
}

func (im *invokeMetrics) serverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != callLocalStreamMethod {
		return handler(srv, ss)
	}
	w := &meteredServerStream{ServerStream: ss}
	err := handler(srv, w)
	im.received.get(w.src).Inc()
	st := w.status
	if err != nil || !w.answered {
		st = responseStatus(nil, err)
	}
	im.answered.get(appStatusKey{app: w.src, status: st}).Inc()
	return err
}

// meteredServerStream learns the caller from the first request chunk and
// the status from the first response chunk.
type meteredServerStream struct {
	grpc.ServerStream
	src      string
	gotFirst bool
	answered bool
	status   int32
}

func (s *meteredServerStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if !s.gotFirst && err == nil {
		s.gotFirst = true
		if c, ok := m.(*internalsv1.InternalInvokeRequestStream); ok {
			s.src = firstValue(c.GetRequest().GetMetadata(), callerAppIDKey)
		}
	}
	return err
}

func (s *meteredServerStream) SendMsg(m any) error {
	if !s.answered {
		if c, ok := m.(*internalsv1.InternalInvokeResponseStream); ok && c.GetResponse() != nil {
			s.answered = true
			s.status = c.GetResponse().GetStatus().GetCode()
		}
	}
	return s.ServerStream.SendMsg(m)
}

// InvokeDialOptions record the caller side of service invocation
// (req_sent_total, res_recv_total, res_recv_latency_ms); pass them to the
// sidecar-to-sidecar connection pool.
func (m *Metrics) InvokeDialOptions() []grpc.DialOption {
	if m == nil {
		return nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.inv.clientUnary),
		grpc.WithChainStreamInterceptor(m.inv.clientStream),
	}
}

// InvokeServerOptions record the callee side of service invocation
// (req_recv_total, res_sent_total) on the internal gRPC server.
func (m *Metrics) InvokeServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.inv.serverUnary),
		grpc.ChainStreamInterceptor(m.inv.serverStream),
	}
}

// InvokeSent records a service invocation that does not go over the
// sidecar-to-sidecar connections (a call to an HTTP endpoint), as daprd
// does: req_sent_total for dst now; the returned func, called with the
// answer's status once it has come, records res_recv_total and
// res_recv_latency_ms. A nil m records nothing.
func (m *Metrics) InvokeSent(dst string) (answered func(status int32)) {
	if m == nil {
		return func(int32) {}
	}
	m.inv.sent.get(appTypeKey{app: dst, typ: typeUnary}).Inc()
	start := time.Now()
	return func(status int32) {
		r := m.inv.recv.get(appStatusKey{app: dst, typ: typeUnary, status: status})
		r.count.Inc()
		r.latency.Observe(float64(time.Since(start)) / float64(time.Millisecond))
	}
}
