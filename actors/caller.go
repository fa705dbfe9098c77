package actors

import (
	"context"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// Headers of the calling sidecar's identity on an actor call to another
// host (daprd's dapr-caller-app-id and dapr-caller-namespace).
const (
	callerAppHeader       = "dapr-caller-app-id"
	callerNamespaceHeader = "dapr-caller-namespace"
)

type callerKey struct{}

// CallerApp is the app ID of the sidecar that sent the actor call being
// served from another host (an internal actor's Invoke reads it from its
// ctx): with mTLS the app of the peer's certificate, without, the one the
// caller names ("" when it names none or its certificate names no app).
// remote is false for a call of this sidecar itself.
func CallerApp(ctx context.Context) (app string, remote bool) {
	app, remote = ctx.Value(callerKey{}).(string)
	return app, remote
}

// withCaller is ctx of a call served for the caller app.
func withCaller(ctx context.Context, app string) context.Context {
	return context.WithValue(ctx, callerKey{}, app)
}

// withoutCaller is ctx of a call of this sidecar itself.
func withoutCaller(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerKey{}, nil)
}

// stampCaller is req with this sidecar's identity in its metadata (what
// the client put there under those names is replaced), for another host.
func (r *Runtime) stampCaller(req *internalsv1.InternalInvokeRequest) *internalsv1.InternalInvokeRequest {
	md := make(map[string]*internalsv1.ListStringValue, len(req.GetMetadata())+2)
	for k, v := range req.GetMetadata() {
		md[k] = v
	}
	st := r.stamp
	if st.app == nil { // a Runtime not made by New (tests)
		st = newCallerStamp(r.cfg.AppID, r.cfg.Namespace)
	}
	md[callerAppHeader] = st.app
	if st.namespace != nil {
		md[callerNamespaceHeader] = st.namespace
	}
	return &internalsv1.InternalInvokeRequest{Ver: req.GetVer(), Actor: req.GetActor(), Message: req.GetMessage(), Metadata: md}
}

// callerStamp is the metadata stampCaller adds, made once: the values are
// only read (by the encoder), never changed, so every call shares them.
type callerStamp struct {
	app, namespace *internalsv1.ListStringValue // namespace nil without one
}

func newCallerStamp(appID, namespace string) callerStamp {
	s := callerStamp{app: &internalsv1.ListStringValue{Values: []string{appID}}}
	if namespace != "" {
		s.namespace = &internalsv1.ListStringValue{Values: []string{namespace}}
	}
	return s
}

// servedCaller is the app ID of the sidecar that sent req to CallActor:
// the peer's certificate's with mTLS, else the header it sent.
func servedCaller(ctx context.Context, req *internalsv1.InternalInvokeRequest) string {
	app, secure, err := invoke.PeerApp(ctx)
	if secure {
		if err != nil {
			return ""
		}
		return app.AppID
	}
	if v := req.GetMetadata()[callerAppHeader]; v != nil && len(v.GetValues()) > 0 {
		return v.GetValues()[0]
	}
	return ""
}

// ContextWithCaller is ctx of an actor call served for app from another
// host, as CallActor makes it (for tests of internal actors).
func ContextWithCaller(ctx context.Context, app string) context.Context {
	return withCaller(ctx, app)
}
