package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/resiliency"
)

// ErrInputClosed is what an input binding gets for an event that arrives
// while the binding stops (daprd's words): the backend keeps the event.
var ErrInputClosed = errors.New("input binding is closed")

// bindingsResync is how often Run checks the loaded bindings even without
// a Reload.
const bindingsResync = time.Second

// closedLinger is how long a stopping input binding keeps reading after
// its last delivery, so the backend gets the answer of that delivery and
// ErrInputClosed for what comes next, as daprd does.
const closedLinger = 400 * time.Millisecond

// maxBindingAnswer bounds the app's answer to an input event.
const maxBindingAnswer = 4 << 20

// activeInput is one input binding being read.
type activeInput struct {
	inst    *bindings.Instance
	release func()
	flight  *inflight
	cancel  context.CancelFunc
	done    chan struct{}
}

// inputTarget is the app as input events reach it.
type inputTarget struct {
	app App
	// subscribed lists, for a gRPC app, the bindings ListInputBindings
	// named (asked once per Run, as daprd does); nil until asked.
	subscribed []string
	// decided caches, per instance, whether the app takes its events.
	decided map[*bindings.Instance]bool
}

// Run reads the input bindings and delivers their events to app until ctx
// ends, following Reload and the components' readiness. When ctx ends it
// stops every input binding as daprd does: new events are refused with
// ErrInputClosed, deliveries in flight finish and their answers reach the
// backend, then reading stops.
func (b *Bindings) Run(ctx context.Context, app App) error {
	if app.HTTP == nil && app.GRPC == nil {
		return nil
	}
	tgt := &inputTarget{app: app, decided: map[*bindings.Instance]bool{}}
	t := time.NewTicker(bindingsResync)
	defer t.Stop()
	for {
		b.reconcile(ctx, tgt)
		select {
		case <-ctx.Done():
			b.stopAll()
			return nil
		case <-b.reload:
		case <-t.C:
		}
	}
}

// reconcile makes the running input bindings match the ready instances.
func (b *Bindings) reconcile(ctx context.Context, tgt *inputTarget) {
	want := map[string]*bindings.Instance{}
	for _, st := range b.cfg.Registry.List() {
		if st.State != components.StateReady {
			continue
		}
		inst, _, ok := b.cfg.Registry.Get(st.Name)
		if !ok || inst == nil || inst.Input == nil {
			continue
		}
		want[st.Name] = inst
	}
	b.mu.Lock()
	var stale []*activeInput
	for name, a := range b.active {
		if want[name] != a.inst {
			stale = append(stale, a)
			delete(b.active, name)
		}
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range stale {
		b.log.Info("input binding stopping", "binding", a.inst.Name)
		wg.Go(func() { b.stopInput(a) })
	}
	wg.Wait()
	for name, inst := range want {
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		_, running := b.active[name]
		b.mu.Unlock()
		if running || !b.appTakes(ctx, tgt, inst) {
			continue
		}
		b.start(ctx, tgt, name)
	}
	for inst := range tgt.decided {
		if want[inst.Name] != inst {
			delete(tgt.decided, inst)
		}
	}
}

// appTakes reports whether the app wants inst's events: always when the
// direction metadata names input; otherwise, for an HTTP app, when
// OPTIONS /<route> answers 2xx or 405, and for a gRPC app when
// ListInputBindings names it (daprd's checks).
func (b *Bindings) appTakes(ctx context.Context, tgt *inputTarget, inst *bindings.Instance) bool {
	if inst.ExplicitInput {
		return true
	}
	if v, ok := tgt.decided[inst]; ok {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var takes bool
	switch {
	case tgt.app.GRPC != nil:
		if tgt.subscribed == nil {
			resp, err := runtimev1.NewAppCallbackClient(tgt.app.GRPC.Conn()).ListInputBindings(ctx, &emptypb.Empty{})
			if err != nil {
				b.log.Debug("app did not list its input bindings", "error", err)
			}
			tgt.subscribed = append([]string{}, resp.GetBindings()...)
		}
		takes = slices.Contains(tgt.subscribed, inst.Name)
	default:
		resp, err := tgt.app.HTTP.Invoke(ctx, appRequest(inst.Route, commonv1.HTTPExtension_OPTIONS, nil, nil))
		if err != nil {
			b.log.Warn("could not ask the app whether it takes input binding events (OPTIONS); asking again later", "binding", inst.Name, "route", inst.Route, "error", err)
			return false
		}
		_ = resp.Body.Close()
		code := int(resp.Message.GetStatus().GetCode())
		takes = code/100 == 2 || code == http.StatusMethodNotAllowed
	}
	tgt.decided[inst] = takes
	if !takes {
		b.log.Info("app has not subscribed to binding " + inst.Name)
	}
	return takes
}

// start begins reading input binding name.
func (b *Bindings) start(ctx context.Context, tgt *inputTarget, name string) {
	inst, release, err := b.cfg.Registry.Acquire(name)
	if err != nil || inst.Input == nil {
		if err == nil {
			release()
		}
		return
	}
	// The read outlives ctx until stopInput has let deliveries finish.
	readCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &activeInput{inst: inst, release: release, flight: newInflight(), cancel: cancel, done: make(chan struct{})}
	b.mu.Lock()
	b.active[name] = a
	b.mu.Unlock()
	b.log.Info("input binding reading", "binding", name, "route", inst.Route)
	go func() {
		defer close(a.done)
		err := inst.Input.Read(readCtx, func(ctx context.Context, ev *bindings.Event) ([]byte, error) {
			if !a.flight.enter() {
				return nil, ErrInputClosed
			}
			defer a.flight.leave()
			// A removed or replaced component takes no more events, even
			// before Run has stopped reading it (daprd stops an input
			// binding before it leaves the metadata API).
			if cur, _, ok := b.cfg.Registry.Get(name); !ok || cur != inst {
				return nil, ErrInputClosed
			}
			if ev == nil {
				return nil, nil
			}
			out, err := b.deliver(ctx, tgt.app, inst, ev)
			if err != nil {
				b.log.Debug("error from app consumer for binding", "binding", name, "error", err)
			}
			return out, err
		})
		if err != nil && readCtx.Err() == nil {
			b.log.Error("input binding stopped reading; it restarts when its component changes", "binding", name, "error", err)
		}
	}()
}

// stopInput refuses new events, waits for the deliveries in flight, lets
// the backend settle their answers, then ends the read.
func (b *Bindings) stopInput(a *activeInput) {
	a.flight.mu.Lock()
	busy := a.flight.n > 0
	a.flight.mu.Unlock()
	<-a.flight.stop()
	if busy {
		time.Sleep(b.linger)
	}
	a.cancel()
	<-a.done
	a.release()
}

// stopAll stops every input binding.
func (b *Bindings) stopAll() {
	b.mu.Lock()
	all := make([]*activeInput, 0, len(b.active))
	for name, a := range b.active {
		all = append(all, a)
		delete(b.active, name)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Go(func() { b.stopInput(a) })
	}
	wg.Wait()
}

// Reading lists the input bindings being read, sorted.
func (b *Bindings) Reading() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.active))
	for name := range b.active {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// errAppStatus marks an HTTP answer outside 2xx, which the inbound policy
// retries.
var errAppStatus = errors.New("error sending binding event to application")

// deliver hands one event to the app under the binding's inbound
// Resiliency policy and returns the app's answer.
func (b *Bindings) deliver(ctx context.Context, app App, inst *bindings.Instance, ev *bindings.Event) ([]byte, error) {
	var p *resiliency.Policy
	if b.cfg.Resiliency != nil {
		p = b.cfg.Resiliency().ForComponentInbound(inst.Name, resiliency.Binding)
	}
	if app.GRPC != nil {
		return b.deliverGRPC(ctx, app, p, inst, ev)
	}
	type answer struct {
		code int
		body []byte
	}
	call := func(ctx context.Context) (answer, error) {
		resp, err := app.HTTP.Invoke(ctx, appRequest(inst.Route, commonv1.HTTPExtension_POST, ev.Data, ev.Metadata))
		if err != nil {
			return answer{}, fmt.Errorf("error invoking app: %w", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBindingAnswer))
		a := answer{code: int(resp.Message.GetStatus().GetCode()), body: body}
		if err != nil {
			return a, fmt.Errorf("failed to read response body: %w", err)
		}
		if a.code != http.StatusOK {
			return a, fmt.Errorf("%w, status %d", errAppStatus, a.code)
		}
		return a, nil
	}
	var a answer
	var err error
	if p == nil {
		a, err = call(ctx)
	} else {
		a, err = resiliency.Do(ctx, p, call)
	}
	if err != nil && !errors.Is(err, errAppStatus) {
		return nil, err
	}
	if a.code < 200 || a.code > 299 {
		return nil, fmt.Errorf("fails to send binding event to http app channel, status code: %d body: %s", a.code, string(a.body))
	}
	return a.body, nil
}

// deliverGRPC is deliver for a gRPC app: OnBindingEvent. An answer naming
// output bindings in "to" sends its data to them (daprd's legacy reply),
// one after the other, or all at once with concurrency PARALLEL.
func (b *Bindings) deliverGRPC(ctx context.Context, app App, p *resiliency.Policy, inst *bindings.Instance, ev *bindings.Event) ([]byte, error) {
	client := runtimev1.NewAppCallbackClient(app.GRPC.Conn())
	req := &runtimev1.BindingEventRequest{Name: inst.Name, Data: ev.Data, Metadata: ev.Metadata}
	call := func(ctx context.Context) (*runtimev1.BindingEventResponse, error) {
		return client.OnBindingEvent(ctx, req)
	}
	var resp *runtimev1.BindingEventResponse
	var err error
	if p == nil {
		resp, err = call(ctx)
	} else {
		resp, err = resiliency.Do(ctx, p, call)
	}
	if err != nil {
		return nil, fmt.Errorf("error invoking app: %w", err)
	}
	if to := resp.GetTo(); len(to) > 0 {
		var v any
		if err := json.Unmarshal(resp.GetData(), &v); err != nil {
			v = nil
		}
		data, _ := json.Marshal(v)
		send := func(name string) error {
			_, err := b.Invoke(ctx, name, &bindings.InvokeRequest{Operation: bindings.OperationCreate, Data: data})
			if err != nil {
				b.log.Error("output binding named by the app's answer to an input event failed", "binding", name, "error", err)
			}
			return err
		}
		if resp.GetConcurrency() == runtimev1.BindingEventResponse_PARALLEL {
			var wg sync.WaitGroup
			for _, name := range to {
				wg.Go(func() { _ = send(name) })
			}
			wg.Wait()
		} else {
			for _, name := range to {
				if send(name) != nil {
					break
				}
			}
		}
	}
	return resp.GetData(), nil
}

// appRequest is a call to the HTTP app at /<route> carrying metadata as
// headers.
func appRequest(route string, verb commonv1.HTTPExtension_Verb, data []byte, md map[string]string) *invoke.Request {
	hdr := make(map[string]*internalsv1.ListStringValue, len(md))
	for k, v := range md {
		if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v) {
			hdr[strings.ToLower(k)] = &internalsv1.ListStringValue{Values: []string{v}}
		}
	}
	req := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:        strings.TrimPrefix(route, "/"),
				ContentType:   "application/json",
				HttpExtension: &commonv1.HTTPExtension{Verb: verb},
			},
			Metadata: hdr,
		},
	}
	if verb != commonv1.HTTPExtension_OPTIONS {
		req.Body, req.ContentLength = bytes.NewReader(data), int64(len(data))
	}
	return req
}
