package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/resiliency"
)

// Headers of Dapr's actor protocol.
const (
	ReentrancyIDHeader    = "Dapr-Reentrancy-Id"
	errorResponseHeader   = "X-Daprerrorresponseheader"
	maxActorResponseBytes = 64 << 20
)

// Call routes an actor call (req.Actor names it; req.Message the method,
// data and HTTP verb) to the host that owns the actor and returns the
// app's answer. An answer other than 200, or one flagged with
// X-DaprErrorResponseHeader, is an *AppError. The actor's Resiliency
// policy (Config.Policy) retries, times out and breaks whole calls, app
// errors included; when it gives up on an app error, that last answer is
// the *AppError returned. A type missing from the placement table gets
// notFoundWait to appear (routeFound).
func (r *Runtime) Call(ctx context.Context, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	return r.call(ctx, req, true)
}

// call is Call; waitType chooses whether a type missing from the table is
// waited for (the API's calls) or fails at once (the engine's internal
// calls, which have their own fallbacks and must not hold a stopping
// sidecar).
func (r *Runtime) call(ctx context.Context, req *internalsv1.InternalInvokeRequest, waitType bool) (*internalsv1.InternalInvokeResponse, error) {
	if r == nil || r.placement == nil {
		return nil, ErrNoPlacement
	}
	var p *resiliency.Policy
	if r.cfg.Policy != nil {
		p = r.cfg.Policy(req.GetActor().GetActorType(), req.GetActor().GetActorId())
	}
	resp, err := resiliency.Do(ctx, p, func(ctx context.Context) (*internalsv1.InternalInvokeResponse, error) {
		var resp *internalsv1.InternalInvokeResponse
		var err error
		if waitType {
			resp, err = r.routeFound(ctx, req, r.callRemote)
		} else {
			resp, err = r.route(ctx, req)
		}
		var ae *AppError
		if errors.As(err, &ae) {
			return resp, &resiliency.StatusError{HTTP: ae.Status, Err: ae}
		}
		return resp, err
	})
	var ae *AppError
	if errors.As(err, &ae) {
		return resp, ae
	}
	return resp, err
}

// notFoundWait is how long a call of an actor type that no host has
// registered waits for one, as daprd's built-in
// DaprBuiltInActorNotFoundRetries (5 retries, 1 s apart) does: the app
// that hosts the type may have just registered it (a workflow worker that
// connected), and placement's next table brings it.
const notFoundWait = 5 * time.Second

// routeFound is route that gives an actor type missing from the placement
// table up to notFoundWait to appear, trying again on each new table and
// at least every second.
// remote is the call of another host.
func (r *Runtime) routeFound(ctx context.Context, req *internalsv1.InternalInvokeRequest, remote func(context.Context, string, *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error)) (*internalsv1.InternalInvokeResponse, error) {
	deadline := time.Now().Add(notFoundWait)
	for {
		changed := r.placement.Table().Changed()
		resp, err := r.routeVia(ctx, req, remote)
		left := time.Until(deadline)
		if !errors.Is(err, placement.ErrNoAddress) || left <= 0 {
			return resp, err
		}
		t := time.NewTimer(min(left, time.Second))
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		t.Stop()
	}
}

// maxMoves bounds how often one attempt follows an actor that moved to
// another host while its call was on the way (errMoved).
const maxMoves = 10

// route makes one attempt of Call. A call that finds the actor moved
// (the table changed between the lookup and the turn, here or on the
// owner it was sent to) reached no app: it is routed again once this
// host's table has changed, or after a short pause.
func (r *Runtime) route(ctx context.Context, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	return r.routeVia(ctx, req, r.callRemote)
}

// routeVia is route with remote as the call of another host.
func (r *Runtime) routeVia(ctx context.Context, req *internalsv1.InternalInvokeRequest, remote func(context.Context, string, *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error)) (*internalsv1.InternalInvokeResponse, error) {
	var resp *internalsv1.InternalInvokeResponse
	for moves := 0; ; moves++ {
		changed := r.placement.Table().Changed()
		local, addr, err := r.locate(ctx, req.GetActor().GetActorType(), req.GetActor().GetActorId())
		if err != nil {
			return nil, err
		}
		if local {
			// This sidecar's own call, though made while serving another's.
			resp, err = r.callLocal(withoutCaller(ctx), req)
		} else {
			resp, err = remote(ctx, addr, req)
		}
		// A type this host stopped hosting (the workflow engine's, between
		// its last worker leaving and the next one connecting) is still
		// given to it until placement's next table: routed again, as a
		// moved actor, it waits for the table that has it hosted.
		if (errors.Is(err, errMoved) || local && errors.Is(err, ErrNotHosted)) && moves < maxMoves {
			select {
			case <-changed:
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if err := appError(resp); err != nil {
		return resp, err
	}
	return resp, nil
}

// locate finds the owner, waiting up to LookupTimeout for placement.
func (r *Runtime) locate(ctx context.Context, actorType, actorID string) (local bool, addr string, err error) {
	tbl := r.placement.Table()
	if h, settled, err := tbl.TryLookup(actorType, actorID); settled && err == nil {
		return isLocal(h.Name, r.hostName), h.Name, nil
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
	defer cancel()
	changed := tbl.Changed()
	h, err := tbl.Lookup(lctx, actorType, actorID)
	// A type this host has just begun to serve (a workflow worker that
	// connected) is in the table after placement's next round: wait for
	// it rather than fail.
	for errors.Is(err, placement.ErrNoAddress) {
		if !r.hostsType(actorType) {
			break
		}
		select {
		case <-changed:
		case <-lctx.Done():
			return false, "", err
		}
		changed = tbl.Changed()
		h, err = tbl.Lookup(lctx, actorType, actorID)
	}
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return false, "", fmt.Errorf("%w: no placement table after %s (placement connected: %q)", ErrPlacementUnavailable, r.cfg.LookupTimeout, r.placement.Connected())
		}
		return false, "", err
	}
	return isLocal(h.Name, r.hostName), h.Name, nil
}

// hostsType reports whether this host has registered actorType.
func (r *Runtime) hostsType(actorType string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.types[actorType]
	_, internal := r.internal[actorType]
	return ok || internal
}

// isLocal compares addresses as daprd does: equal, or both loopback names
// with the same port.
func isLocal(target, self string) bool {
	if target == self {
		return true
	}
	th, tp, err1 := net.SplitHostPort(target)
	sh, sp, err2 := net.SplitHostPort(self)
	return err1 == nil && err2 == nil && tp == sp && loopback(th) && loopback(sh)
}

func loopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// CallActor serves another sidecar's call of an actor this host owns (the
// internal CallActor RPC).
func (r *Runtime) CallActor(ctx context.Context, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	if r == nil || r.placement == nil {
		return nil, status.Error(codes.FailedPrecondition, ErrNoPlacement.Error())
	}
	local, addr, err := r.locate(ctx, req.GetActor().GetActorType(), req.GetActor().GetActorId())
	switch {
	case err != nil:
		return nil, status.Error(codes.Unavailable, err.Error())
	case !local:
		return nil, status.Errorf(codes.FailedPrecondition, "%s: actor %s||%s is owned by %s, not by this host", errMoved, req.GetActor().GetActorType(), req.GetActor().GetActorId(), addr)
	}
	resp, err := r.callLocal(withCaller(ctx, servedCaller(ctx, req)), req)
	if err != nil {
		code := codes.Internal
		switch {
		case errors.Is(err, ErrMaxStackDepth):
			code = codes.ResourceExhausted
		case errors.Is(err, errMoved):
			code = codes.FailedPrecondition
		}
		return nil, status.Error(code, err.Error())
	}
	// An app's failure it did not flag with X-DaprErrorResponseHeader goes
	// back as daprd's owner sends it: a status with its error message.
	var ae *AppError
	if errors.As(appError(resp), &ae) && !ae.Flagged {
		return nil, status.Error(codes.Internal, remoteInvokePrefix+ae.Error())
	}
	return resp, nil
}

// remoteInvokePrefix starts the status message of an owner's app failure.
const remoteInvokePrefix = "error invoke actor method: "

// RemoteError is an actor method's failure on another host, as its
// sidecar answered: the gRPC API passes the status on unchanged, the HTTP
// API wraps it (daprd's messages differ so).
type RemoteError struct{ st *status.Status }

func (e *RemoteError) Error() string { return e.st.Err().Error() }

// GRPCStatus is the owner's status.
func (e *RemoteError) GRPCStatus() *status.Status { return e.st }

// callRemote sends the call to the host at addr: over the lean transport
// when that host is a Tandem that speaks it with actor calls, else by
// Dapr's internal CallActor gRPC (a daprd, an earlier Tandem, no mTLS).
func (r *Runtime) callRemote(ctx context.Context, addr string, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	req = r.stampCaller(req)
	out, handled, err := invoke.CallActor(ctx, r.cfg.Pool, addr, req)
	if handled {
		if err != nil {
			return nil, remoteCallError(addr, err)
		}
		return out, nil
	}
	cc, err := r.cfg.Pool.Get(addr)
	if err != nil {
		return nil, err
	}
	out = new(internalsv1.InternalInvokeResponse)
	if err := cc.Invoke(ctx, internalsv1.ServiceInvocation_CallActor_FullMethodName, req, out); err != nil {
		if status.Code(err) == codes.Unavailable {
			r.cfg.Pool.Discard(addr, cc)
		}
		return nil, remoteCallError(addr, err)
	}
	return out, nil
}

// remoteCallError is the error of a call the host at addr failed with
// the status error err: those the router acts on (too deep a reentrant
// stack; the actor moved: routed again on the next table) by their
// sentinels, the owner's app failure as a *RemoteError.
func remoteCallError(addr string, err error) error {
	st := status.Convert(err)
	switch {
	case st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), ErrMaxStackDepth.Error()):
		return ErrMaxStackDepth
	case st.Code() == codes.FailedPrecondition && strings.HasPrefix(st.Message(), errMoved.Error()):
		return fmt.Errorf("call actor on host %s: %w", addr, errMoved)
	case st.Code() == codes.Internal && strings.HasPrefix(st.Message(), remoteInvokePrefix):
		return &RemoteError{st: st}
	}
	return fmt.Errorf("call actor on host %s: %s", addr, st.Message())
}

// callLocal runs the call in the actor's turn on this host's app.
func (r *Runtime) callLocal(ctx context.Context, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	internal, isInternal := r.internalHandler(req.GetActor().GetActorType())
	if r.cfg.App == nil && !isInternal {
		return nil, ErrNoApp
	}
	actorType, actorID := req.GetActor().GetActorType(), req.GetActor().GetActorId()
	if isInternal && skipsLock(internal, req) {
		a, err := r.activateOwned(actorType, actorID)
		if err != nil {
			return nil, err
		}
		resp, err := invokeInternal(ctx, internal, a, req)
		a.lastUse.Store(time.Now().UnixNano())
		return resp, err
	}
	// The call is in flight from here: a table update that changes its
	// type's ring lets it run on for the drain timeout, then cancels it.
	cctx, done := r.calls.acquire(ctx, actorType)
	defer done()
	resp, err := r.callTurn(cctx, internal, isInternal, actorType, actorID, req)
	if err != nil && ctx.Err() == nil {
		// Cut short by a table update or the loss of placement, not by the
		// caller: routed again.
		if cause := context.Cause(cctx); errors.Is(cause, errTableUpdated) || errors.Is(cause, errPlacementLost) {
			return nil, fmt.Errorf("%w: %w", errMoved, cause)
		}
	}
	return resp, err
}

// callTurn runs the call in the actor's turn.
func (r *Runtime) callTurn(ctx context.Context, internal Internal, isInternal bool, actorType, actorID string, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	for attempt := 0; ; attempt++ {
		a, err := r.activateOwned(actorType, actorID)
		if err != nil {
			return nil, err
		}
		release, err := a.turn.acquire(ctx, r.turnID(a, req))
		if errors.Is(err, ErrActorClosed) && attempt < 3 {
			// Deactivated meanwhile: idle, or moved to another host (then
			// activateOwned says so and the call is routed again).
			continue
		}
		if err != nil {
			return nil, err
		}
		var resp *internalsv1.InternalInvokeResponse
		var idle *atomic.Bool // set by DeactivateAfterTurn
		if isInternal {
			var ictx context.Context
			ictx, idle = withDeactivateFlag(ctx)
			resp, err = invokeInternal(ictx, internal, a, req)
		} else {
			resp, err = r.invokeApp(ctx, a, req)
		}
		a.lastUse.Store(time.Now().UnixNano())
		release()
		if idle != nil && idle.Load() {
			r.deactivateIdle(context.WithoutCancel(ctx), a)
		}
		return resp, err
	}
}

// turnID is the reentrancy ID the call's turn is keyed by: the request's
// Dapr-Reentrancy-Id (one is made and passed to the app when missing) for
// reentrant types, a fresh one otherwise.
func (r *Runtime) turnID(a *actor, req *internalsv1.InternalInvokeRequest) string {
	if !a.cfg.Reentrant {
		// The lock of a type without reentrancy never compares IDs: no
		// ID need be made (a random one cost a read of crypto/rand per
		// call).
		return ""
	}
	for k, v := range req.GetMetadata() {
		if strings.EqualFold(k, ReentrancyIDHeader) && len(v.GetValues()) > 0 && v.GetValues()[0] != "" {
			return v.GetValues()[0]
		}
	}
	id := uuid.NewString()
	if req.Metadata == nil {
		req.Metadata = map[string]*internalsv1.ListStringValue{}
	}
	req.Metadata[ReentrancyIDHeader] = &internalsv1.ListStringValue{Values: []string{id}}
	return id
}

// invokeApp calls PUT /actors/{type}/{id}/method/{method} on the app.
func (r *Runtime) invokeApp(ctx context.Context, a *actor, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	msg := req.GetMessage()
	method, err := invoke.NormalizeMethod(msg.GetMethod())
	if err != nil {
		return nil, err
	}
	data := msg.GetData().GetValue()
	md := make(map[string]*internalsv1.ListStringValue, len(req.GetMetadata()))
	for k, v := range req.GetMetadata() {
		md[strings.ToLower(k)] = v
	}
	out := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:      "actors/" + a.typ + "/" + a.id + "/method/" + method,
				ContentType: msg.GetContentType(),
				HttpExtension: &commonv1.HTTPExtension{
					Verb: commonv1.HTTPExtension_PUT, Querystring: msg.GetHttpExtension().GetQuerystring(),
				},
			},
			Metadata: md,
			Actor:    req.GetActor(),
		},
		Body: invoke.NewMemBody(data), ContentLength: int64(len(data)),
	}
	resp, err := r.cfg.App.Invoke(ctx, out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp)
	if err != nil {
		return nil, fmt.Errorf("read actor response: %w", err)
	}
	m := resp.Message
	if m.Message == nil {
		m.Message = &commonv1.InvokeResponse{}
	}
	m.Message.Data = &anypb.Any{Value: body}
	return m, nil
}

// readAnswer reads the app's answer (up to maxActorResponseBytes), into
// one buffer of the size the app announced when it did.
func readAnswer(resp *invoke.Response) ([]byte, error) {
	n := resp.ContentLength
	if n <= 0 || n > maxActorResponseBytes {
		return io.ReadAll(io.LimitReader(resp.Body, maxActorResponseBytes))
	}
	// One byte more than announced, so that a longer body is still read
	// whole (up to the limit) rather than cut at the announced size.
	buf := make([]byte, 0, n+1)
	for {
		m, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) {
			rest, err := io.ReadAll(io.LimitReader(resp.Body, maxActorResponseBytes-int64(len(buf))))
			return append(buf, rest...), err
		}
	}
}

// appError is the *AppError of a failed answer, or nil.
func appError(resp *internalsv1.InternalInvokeResponse) error {
	code := int(resp.GetStatus().GetCode())
	flagged := false
	for k := range resp.GetHeaders() {
		if strings.EqualFold(k, errorResponseHeader) {
			flagged = true
			break
		}
	}
	switch {
	case code == 0: // a gRPC app's OK
		code = http.StatusOK
	case code < 100: // a gRPC app's error code
		code = http.StatusInternalServerError
	}
	if code == http.StatusOK && !flagged {
		return nil
	}
	hdr := make(map[string][]string, len(resp.GetHeaders()))
	for k, v := range resp.GetHeaders() {
		hdr[k] = v.GetValues()
	}
	body := resp.GetMessage().GetData().GetValue()
	return &AppError{Status: code, ContentType: resp.GetMessage().GetContentType(), Headers: hdr, Body: bytes.Clone(body), Flagged: flagged}
}
