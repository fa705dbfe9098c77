package actors

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/types/known/anypb"
)

// Internal is an actor type the sidecar implements itself rather than the
// app (the workflow engine's dapr.internal.{ns}.{app}.workflow and
// .activity types). Its calls run in the actor's turn, as an app's do;
// reminders of the type call Invoke with method "remind/{name}" and, as
// data, the reminder's data as a marshaled anypb.Any (empty when it has
// none): the message it was created with (ReminderRequest.Any), or a
// BytesValue of the JSON of one created with ReminderRequest.Data.
type Internal interface {
	// Invoke runs one method of the actor and returns its answer.
	Invoke(ctx context.Context, actorID, method string, data []byte) ([]byte, error)
	// Deactivate tells that the actor left this host (idle, moved or
	// stopped): cached state must be dropped.
	Deactivate(actorID string)
}

// ReminderRunner is an Internal whose reminders run outside the actor's
// turn and outside the calls a table update drains, as daprd runs its
// activity actor's reminders (SkipLock): a reminder that runs an activity
// may take as long as the activity, and cutting it short when the table
// changes would send its retry to the actor's new owner, which would run
// the activity a second time.
type ReminderRunner interface {
	Internal
	// RemindersOutsideTurn reports that the type's reminders skip the
	// turn and the drain.
	RemindersOutsideTurn() bool
}

// skipsLock reports whether req, a call of internal handler h, is a
// reminder that runs outside the turn (see ReminderRunner).
func skipsLock(h Internal, req *internalsv1.InternalInvokeRequest) bool {
	rr, ok := h.(ReminderRunner)
	return ok && rr.RemindersOutsideTurn() && strings.HasPrefix(req.GetMessage().GetMethod(), "remind/")
}

// internalTypeConfig is how internal types are hosted: daprd's defaults,
// not reentrant.
var internalTypeConfig = TypeConfig{IdleTimeout: DefaultIdleTimeout, DrainCallTimeout: DefaultDrainCallTimeout, MaxStackDepth: DefaultReentrancyMaxDepth}

// HostInternal hosts actor types on this sidecar, each handled by its
// Internal, and reports them to placement at once (one report, so one
// dissemination round, as daprd registers its workflow actors); call it
// before or after Run.
func (r *Runtime) HostInternal(handlers map[string]Internal) {
	if len(handlers) == 0 {
		return
	}
	r.mu.Lock()
	if r.internal == nil {
		r.internal = map[string]Internal{}
	}
	maps.Copy(r.internal, handlers)
	var types []string
	if r.types != nil {
		for t := range handlers {
			r.types[t] = internalTypeConfig
		}
		types = slices.Sorted(maps.Keys(r.types))
	} else {
		// The app's types are not known yet (it has not answered
		// /dapr/config, or has no port and opened no callback stream):
		// the internal types are hosted meanwhile, as daprd hosts the
		// workflow actors of a sidecar with no app.
		types = slices.Sorted(maps.Keys(r.internal))
	}
	r.mu.Unlock()
	r.announceTypes(types)
}

// UnhostInternal stops hosting internal actor types (the workflow engine's
// last worker went away, as daprd unregisters its workflow actors then):
// placement stops routing them here and their active actors are
// deactivated.
func (r *Runtime) UnhostInternal(ctx context.Context, actorTypes ...string) {
	if r == nil || len(actorTypes) == 0 {
		return
	}
	r.mu.Lock()
	for _, t := range actorTypes {
		delete(r.internal, t)
	}
	var types []string
	if r.types != nil {
		for _, t := range actorTypes {
			delete(r.types, t)
		}
		types = slices.Sorted(maps.Keys(r.types))
	} else {
		types = slices.Sorted(maps.Keys(r.internal))
	}
	r.mu.Unlock()
	r.announceTypes(types)
	r.deactivateAll(ctx, func(a *actor) bool { return slices.Contains(actorTypes, a.typ) })
}

// internalHandler is the handler of an internal type, if actorType is one.
func (r *Runtime) internalHandler(actorType string) (Internal, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.internal[actorType]
	return h, ok
}

// withInternal adds the internal types to the app's; r.mu is held.
func (r *Runtime) withInternal(types map[string]TypeConfig) map[string]TypeConfig {
	for t := range r.internal {
		types[t] = internalTypeConfig
	}
	return types
}

// invokeInternal runs a call of an internal actor in its turn.
func invokeInternal(ctx context.Context, h Internal, a *actor, req *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	method, data := req.GetMessage().GetMethod(), req.GetMessage().GetData().GetValue()
	if strings.HasPrefix(method, "remind/") {
		data = internalReminderData(req.GetMessage().GetData())
	}
	out, err := h.Invoke(ctx, a.id, method, data)
	if err != nil {
		return nil, fmt.Errorf("%s||%s: %w", a.typ, a.id, err)
	}
	return &internalsv1.InternalInvokeResponse{
		Status:  &internalsv1.Status{Code: 200},
		Message: &commonv1.InvokeResponse{Data: &anypb.Any{Value: out}},
	}, nil
}

// CallInternal calls method of an internal actor wherever it is hosted
// and returns its answer's bytes. A type no host has fails at once with
// placement.ErrNoAddress: the callers (the workflow engine) wait or fall
// back themselves.
func (r *Runtime) CallInternal(ctx context.Context, actorType, actorID, method string, data []byte) ([]byte, error) {
	resp, err := r.call(ctx, &internalsv1.InternalInvokeRequest{
		Ver:   internalsv1.APIVersion_V1,
		Actor: &internalsv1.Actor{ActorType: actorType, ActorId: actorID},
		Message: &commonv1.InvokeRequest{
			Method: method, Data: &anypb.Any{Value: data}, ContentType: "application/octet-stream",
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT},
		},
	}, false)
	if err != nil {
		return nil, err
	}
	return resp.GetMessage().GetData().GetValue(), nil
}

// LookupHost returns the address of the host placement names for actor
// actorType/actorID now, waiting up to LookupTimeout for its table (the
// workflow engine asks before it counts on another app's actors); the
// error wraps placement.ErrNoAddress when there is none.
func (r *Runtime) LookupHost(ctx context.Context, actorType, actorID string) (string, error) {
	if r == nil || r.placement == nil {
		return "", ErrNoPlacement
	}
	lctx, cancel := context.WithTimeout(ctx, r.cfg.LookupTimeout)
	defer cancel()
	h, err := r.placement.Table().Lookup(lctx, actorType, actorID)
	if err != nil {
		return "", err
	}
	return h.Name, nil
}

// internalTypePrefix starts the sidecar's own actor types (workflow,
// activity, retentioner of each app).
const internalTypePrefix = "dapr.internal."

// CreateInternalReminder stores a reminder of an internal actor type,
// hosted here or by another app's sidecar (the workflow engine leaves an
// activity's run or result on another app's workflow actors, as daprd
// does through the scheduler); the reminder fires on a host of the type.
func (r *Runtime) CreateInternalReminder(ctx context.Context, req ReminderRequest) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !strings.HasPrefix(req.ActorType, internalTypePrefix) {
		return fmt.Errorf("%w: %s is not an internal actor type", ErrReminderNotHosted, req.ActorType)
	}
	if err := ValidName("name", req.Name); err != nil {
		return err
	}
	if err := ValidName("actor ID", req.ActorID); err != nil {
		return err
	}
	return r.remStore.Create(ctx, req)
}

// DeleteInternalReminder removes a reminder CreateInternalReminder may
// have stored; a missing one is not an error.
func (r *Runtime) DeleteInternalReminder(ctx context.Context, actorType, actorID, name string) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !strings.HasPrefix(actorType, internalTypePrefix) {
		return fmt.Errorf("%w: %s is not an internal actor type", ErrReminderNotHosted, actorType)
	}
	return r.remStore.Delete(ctx, actorType, actorID, name)
}
