package grpcapi

import (
	"context"
	"strings"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"go.opentelemetry.io/otel/baggage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// InvokeBinding calls an output binding. As in daprd, the call's metadata
// carries the trace context and every incoming gRPC header (reserved ones
// renamed dapr-<name>), and the answer's metadata comes back as
// metadata.<key> headers, with an error too.
func (a *API) InvokeBinding(ctx context.Context, in *runtimev1.InvokeBindingRequest) (*runtimev1.InvokeBindingResponse, error) {
	if a.cfg.Bindings == nil {
		return a.UnimplementedDaprServer.InvokeBinding(ctx, in)
	}
	md := make(map[string]string, len(in.GetMetadata())+2)
	for k, v := range in.GetMetadata() {
		md[k] = v
	}
	incoming, _ := metadata.FromIncomingContext(ctx)
	var parent, state string
	if v := incoming.Get("traceparent"); len(v) > 0 {
		parent = v[0]
	}
	if v := incoming.Get("tracestate"); len(v) > 0 {
		state = v[0]
	}
	tp, ts := api.TraceContext(ctx, parent, state)
	if _, ok := md["traceparent"]; !ok {
		md["traceparent"] = tp
	}
	if _, ok := md["tracestate"]; !ok && ts != "" {
		md["tracestate"] = ts
	}
	if bg := incoming.Get("baggage"); len(bg) > 0 {
		joined := strings.Join(bg, ",")
		if _, err := baggage.Parse(joined); err != nil {
			return nil, apierr.GRPC(apierr.MalformedRequest("invalid baggage header: %v", err))
		}
		md["baggage"] = joined
	}
	for k, vs := range incoming {
		if len(vs) == 0 {
			continue
		}
		key := reservedToDapr(k)
		if _, exists := md[key]; !exists || k == "traceparent" || k == "tracestate" {
			md[key] = vs[0]
		}
	}
	resp, err := a.cfg.Bindings.Invoke(ctx, in.GetName(), &bindings.InvokeRequest{Operation: in.GetOperation(), Data: in.GetData(), Metadata: md})
	if resp != nil && len(resp.Metadata) > 0 {
		hdr := metadata.MD{}
		for k, v := range resp.Metadata {
			hdr.Append("metadata."+strings.ToLower(k), v)
		}
		_ = grpc.SetHeader(ctx, hdr)
	}
	if err != nil {
		return nil, apierr.GRPC(apierr.InvokeOutputBindingRich(in.GetName(), err))
	}
	out := &runtimev1.InvokeBindingResponse{}
	if resp != nil {
		out.Data, out.Metadata = resp.Data, resp.Metadata
	}
	return out, nil
}

// reservedToDapr renames the gRPC headers daprd does not pass on under
// their own names (pseudo-headers, grpc-*).
func reservedToDapr(key string) string {
	switch {
	case key == ":method" || key == ":scheme" || key == ":path" || key == ":authority":
		return "dapr-" + key[1:]
	case strings.HasPrefix(key, "grpc-"):
		return "dapr-" + key
	}
	return key
}
