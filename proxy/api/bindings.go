package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/resiliency"
)

// BindingsConfig is what the bindings API serves with.
type BindingsConfig struct {
	// Registry holds the binding instances by component name.
	Registry *components.Registry[*bindings.Instance]
	// Resiliency, if set, returns the Resiliency policies in effect:
	// output calls run under the component's outbound policy, deliveries
	// of input events under its inbound one.
	Resiliency func() *resiliency.Set
	// Log receives failures; nil discards them.
	Log *slog.Logger
}

// Bindings is the bindings API: output calls (Invoke) and the delivery of
// input events to the app (Run). It is safe for concurrent use.
type Bindings struct {
	cfg BindingsConfig
	log *slog.Logger

	// reload wakes Run when the components change.
	reload chan struct{}
	mu     sync.Mutex
	active map[string]*activeInput
	// created is when the API was made (Settled).
	created time.Time
	// linger is closedLinger (tests lengthen it).
	linger time.Duration
}

// NewBindings returns the bindings API for cfg.
func NewBindings(cfg BindingsConfig) *Bindings {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[*bindings.Instance]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bindings{cfg: cfg, log: log.With("component", "bindings"), reload: make(chan struct{}, 1), active: map[string]*activeInput{}, created: time.Now(), linger: closedLinger}
}

// Reload makes Run follow a change of the loaded bindings.
func (b *Bindings) Reload() {
	select {
	case b.reload <- struct{}{}:
	default:
	}
}

// Invoke calls output binding name with req, under its outbound Resiliency
// policy. The answer is returned with the error too when the backend gave
// one (its metadata travels back either way, as in daprd).
func (b *Bindings) Invoke(ctx context.Context, name string, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation == "" {
		return nil, errors.New("operation field is missing from request")
	}
	inst, release, err := b.cfg.Registry.Acquire(name)
	if err != nil || inst.Output == nil {
		if err == nil {
			release()
		}
		b.log.Debug("output binding unavailable", "binding", name, "error", err)
		return nil, fmt.Errorf("couldn't find output binding %s", name)
	}
	defer release()
	if !inst.SupportsOperation(req.Operation) {
		return nil, fmt.Errorf("binding %s does not support operation %s. supported operations:%s", name, req.Operation, strings.Join(inst.Output.Operations(), " "))
	}
	var p *resiliency.Policy
	if b.cfg.Resiliency != nil {
		p = b.cfg.Resiliency().ForComponentOutbound(name, resiliency.Binding)
	}
	if p == nil {
		resp, err := inst.Output.Invoke(ctx, req)
		return answerOf(resp, err), err
	}
	var last *bindings.InvokeResponse
	resp, err := resiliency.Do(bindings.WithResiliency(ctx), p, func(ctx context.Context) (*bindings.InvokeResponse, error) {
		resp, err := inst.Output.Invoke(ctx, req)
		last = answerOf(resp, err)
		return resp, err
	})
	if err != nil {
		return last, err
	}
	return resp, nil
}

// answerOf is the answer that comes with an Invoke outcome.
func answerOf(resp *bindings.InvokeResponse, err error) *bindings.InvokeResponse {
	if resp != nil {
		return resp
	}
	return bindings.ResponseOf(err)
}

// TraceContext returns the W3C trace context an output binding call
// carries in its metadata (daprd always sends one, so that bindings.http
// can pass it on): the span in ctx, else parent and state as the caller
// sent them, else a new unsampled trace.
func TraceContext(ctx context.Context, parent, state string) (string, string) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags()), sc.TraceState().String()
	}
	if parent != "" {
		return parent, state
	}
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return fmt.Sprintf("00-%s-%s-00", tid, sid), ""
}

// firstInitLimit bounds how long Settled waits for the components' first
// Init attempts.
const firstInitLimit = 10 * time.Second

// firstAttemptsDone reports whether every component of reg has had its
// first Init attempt, or firstInitLimit has passed since created.
func firstAttemptsDone[T any](reg *components.Registry[T], created time.Time) bool {
	if time.Since(created) > firstInitLimit {
		return true
	}
	for _, st := range reg.List() {
		if st.State == components.StateInitializing {
			return false
		}
	}
	return true
}

// Settled reports whether every binding has had its first Init attempt
// (or firstInitLimit has passed since the API was made): the sidecar
// reports healthy only then, as daprd does once its components are
// initialised.
func (b *Bindings) Settled() bool {
	return firstAttemptsDone(b.cfg.Registry, b.created)
}
