// Package workflow is the durable workflow engine behind Dapr's workflow
// API. Each workflow instance is an internal actor of type
// dapr.internal.{namespace}.{appID}.workflow hosted by the sidecar (actors:
// placement puts each on exactly one host, and its calls are turn-based);
// its history and inbox live in the actor state store under Dapr's keys
// (metadata, history-NNNNNN, inbox-NNNNNN, customStatus), so instances
// survive restarts and move between hosts. Each activity run is an actor
// of type ...activity with ID {instance}::{taskID}::{generation}.
//
// The app's workflow runtime (the SDKs, through the durabletask protocol)
// connects to the TaskHubSidecarService (TaskHub) on the sidecar's gRPC
// port and receives work items: an orchestrator work item carries the
// instance's past and new events and is answered with actions, which the
// engine turns into history, activity runs, durable timers (actor
// reminders), child instances and events. proxy serves the HTTP and gRPC
// APIs on an Engine; cmd/tandemd builds it.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/workflow/signing"
	"github.com/tandemrun/tandem/workflow/wfacl"
)

// Errors callers branch on; proxy maps them to Dapr's error codes.
var (
	// ErrNotFound: no instance with that ID.
	ErrNotFound = errors.New("workflow instance does not exist")
	// ErrExists: an instance with that ID is running.
	ErrExists = errors.New("an active workflow with this ID already exists")
	// ErrNotCompleted: purge of an instance that has not ended.
	ErrNotCompleted = errors.New("workflow instance is not in a completed state; terminate it or wait for it to complete before purging")
	// ErrNoActors: the sidecar runs without placement.
	ErrNoActors = errors.New("the workflow engine needs the actor runtime: start the sidecar with --placement-host-address and an actor state store")
)

// Host is what the engine needs of the actor runtime (actors.Runtime).
type Host interface {
	HostInternal(handlers map[string]actors.Internal)
	UnhostInternal(ctx context.Context, actorTypes ...string)
	CallInternal(ctx context.Context, actorType, actorID, method string, data []byte) ([]byte, error)
	GetState(ctx context.Context, actorType, actorID, key string) ([]byte, error)
	// LookupState is GetState that tells a stored empty value (found)
	// from a missing key.
	LookupState(ctx context.Context, actorType, actorID, key string) (data []byte, found bool, err error)
	TransactState(ctx context.Context, actorType, actorID string, ops []actors.StateOp) error
	// TransactStateDirect is TransactState outside the actor's turns
	// (force purge).
	TransactStateDirect(ctx context.Context, actorType, actorID string, ops []actors.StateOp) error
	CreateReminder(ctx context.Context, req actors.ReminderRequest) error
	DeleteReminder(ctx context.Context, actorType, actorID, name string) error
	ListActorIDs(ctx context.Context, actorType, key string, token *string, pageSize uint32) ([]string, *string, error)
}

// Config is what an Engine is built from.
type Config struct {
	AppID     string
	Namespace string
	// Actors hosts the engine's actor types; nil: every call answers
	// ErrNoActors.
	Actors Host
	// WatchdogPeriod is how often a running instance's watchdog reminder
	// re-drives work a crash may have lost (10s if 0).
	WatchdogPeriod time.Duration
	// SchedulerReminders says the scheduler keeps the reminders. Then
	// the engine keeps daprd's set of reminders: each activity run has a
	// run-activity reminder that keeps it durable, and an instance has a
	// watchdog only while work only it would re-drive is in flight, so an
	// instance that waits has only its timers. Without it (reminders in
	// the actor state store rewrite one list per change, too dear for a
	// reminder per activity or event) an instance keeps one watchdog from
	// start to end.
	SchedulerReminders bool
	// SettleDelay is how long a running instance that waits for an
	// activity of its own app keeps its watchdog before it is deleted
	// (settle), so that a chain of activities does not delete and store
	// it again for each: 1s if 0, at once if negative. Only with
	// SchedulerReminders.
	SettleDelay time.Duration
	// MaxMessageSize is the gRPC API's max message size (--max-body-size):
	// an instance whose work item would not fit stalls (0: no limit).
	MaxMessageSize int
	// Retention, if set, purges instances some time after they end
	// (the Configuration's spec.workflow.stateRetentionPolicy).
	Retention *RetentionPolicy
	// InProcess, if set, runs the workflows and activities named
	// dapr.internal.* (see InProcess).
	InProcess InProcess
	// AccessPolicy returns the workflow access policy in force (nil:
	// every app may call this app's workflows and activities); nil func:
	// none.
	AccessPolicy func() *wfacl.Policies
	// ACLDecided, if set, is told each access policy decision on another
	// app's call: operation on a workflow or an activity (kind).
	ACLDecided func(allowed bool, operation, caller, kind string)
	// Signer, if set, signs the instances' histories and verifies them
	// on load (Dapr's WorkflowHistorySigning feature; package signing).
	Signer *signing.Signer
	// AttestationMetrics, if set, is told of the results' attestations.
	AttestationMetrics AttestationMetrics
	// Metrics, if set, is told of the engine's work (daprd's
	// dapr_runtime_workflow_* metrics).
	Metrics RuntimeMetrics
	// MaxConcurrentWorkflows and MaxConcurrentActivities bound the
	// workflow runs and activity runs this sidecar has under way at once
	// (the Configuration's spec.workflow.maxConcurrentWorkflowInvocations
	// and maxConcurrentActivityInvocations); 0: no bound.
	MaxConcurrentWorkflows, MaxConcurrentActivities int
	// Tracer, if set, records the engine's spans (tracing.go).
	Tracer trace.Tracer
	// ClusterLimits says which runs the scheduler bounds cluster-wide
	// (clusterlimits.go); it needs SchedulerReminders.
	ClusterLimits ClusterLimits
	Log           *slog.Logger
}

// Engine runs workflow instances; it is safe for concurrent use.
type Engine struct {
	cfg          Config
	log          *slog.Logger
	workflowType string
	activityType string
	retainType   string
	workers      *workers
	hostMu       sync.Mutex // orders host and unhost
	hosted       bool       // the actor types are hosted: a worker is connected, or in-process users
	inProcUsers  int        // holders of HostActors not yet released (MCPServers)
	watchers     watchers   // the waiters of each instance (Wait)

	mu         sync.Mutex
	instances  map[string]*instance     // loaded state of instances active here (used in their turn)
	running    map[string]bool          // activity runs dispatched from here and not yet answered
	done       doneMarks                // activity actors that ran to the end on this host: the run's task execution ID
	inflight   map[string]*activityRun  // activity runs under way in a reminder's trigger, by actor ID and task execution ID
	pending    map[string]int           // deliveries in flight from each instance (children, events)
	delivered  map[string]chan struct{} // closed when an instance's last delivery in flight ends (awaitDeliveries)
	settling   map[string]bool          // instances whose settle waits for SettleDelay (settleLater)
	parkedActs map[string][]byte        // activity runs whose worker left, by actor ID: their call data (reconnect.go)
	trusted    trustedChains            // signers' chains verified against the trust anchors (attest.go)
	// workflowSlots, activitySlots: the runs under way, bounded
	// (Config.MaxConcurrent*).
	workflowSlots, activitySlots slots
	// runNames: the workflow names of instances whose runs go through
	// the cluster-wide limits, by ID (clusterlimits.go).
	runNames      sync.Map
	hostWait      time.Duration   // how long a call waits for a host of the engine's types (noHostRetry)
	lastEventNano atomic.Int64    // the last external event's ingestion time (eventdedup.go)
	ctx           context.Context // Run's; background work stops with it
	bg            sync.WaitGroup
}

// New builds an Engine and hosts its actor types on cfg.Actors.
func New(cfg Config) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.WatchdogPeriod <= 0 {
		cfg.WatchdogPeriod = 10 * time.Second
	}
	if cfg.SettleDelay == 0 {
		cfg.SettleDelay = time.Second
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	prefix := "dapr.internal." + ns + "." + cfg.AppID
	e := &Engine{
		cfg: cfg, log: cfg.Log, workflowType: prefix + ".workflow", activityType: prefix + ".activity", retainType: prefix + ".retentioner",
		workers: newWorkers(), instances: map[string]*instance{},
		running: map[string]bool{}, inflight: map[string]*activityRun{}, pending: map[string]int{}, delivered: map[string]chan struct{}{}, settling: map[string]bool{}, parkedActs: map[string][]byte{},
		workflowSlots: newSlots(cfg.MaxConcurrentWorkflows), activitySlots: newSlots(cfg.MaxConcurrentActivities),
		hostWait: noHostRetry,
	}
	return e
}

// host hosts the engine's actor types on this sidecar (and reports them to
// placement). As in daprd, that waits for the app's first workflow worker:
// a sidecar whose app runs no workflows hosts no workflow actors.
func (e *Engine) host() {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	e.hostLocked()
}

// hostLocked hosts the types unless they are; false if they were. hostMu
// is held.
func (e *Engine) hostLocked() bool {
	if e.hosted || e.cfg.Actors == nil {
		return false
	}
	e.hosted = true
	e.cfg.Actors.HostInternal(map[string]actors.Internal{
		e.workflowType: orchestratorActor{e}, e.activityType: activityActor{e}, e.retainType: retentionerActor{e},
	})
	return true
}

// unhost stops hosting the engine's actor types once the last worker is
// gone and no in-process user (an MCPServer) holds them, as daprd
// unregisters its workflow actors: their instances move to a sidecar with
// workers (or wait for one), and a force purge is what removes an instance
// no worker will run.
func (e *Engine) unhost(ctx context.Context) {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	if !e.hosted || e.workers.count() > 0 || e.inProcUsers > 0 {
		return
	}
	e.cfg.Actors.UnhostInternal(ctx, e.workflowType, e.activityType, e.retainType)
	e.hosted = false
}

// router is the routing daprd records on the events an instance's own
// app writes (ExecutionStarted, ExecutionCompleted): this app as source.
func (e *Engine) router() *protos.TaskRouter { return &protos.TaskRouter{SourceAppID: e.cfg.AppID} }

// WorkflowActorType and ActivityActorType are the engine's actor types.
func (e *Engine) WorkflowActorType() string { return e.workflowType }

// ActivityActorType is the actor type of activity runs.
func (e *Engine) ActivityActorType() string { return e.activityType }

// ConnectedWorkers is the number of open work-item streams (metadata API).
func (e *Engine) ConnectedWorkers() int { return e.workers.count() }

// notify wakes the waiters of inst after it changed here, handing them
// its state.
func (e *Engine) notify(inst *instance) { e.watchers.notify(inst.id, inst.state) }

func (e *Engine) call(ctx context.Context, actorType, id, method string, data []byte) ([]byte, error) {
	if e.cfg.Actors == nil {
		return nil, ErrNoActors
	}
	// No host of the engine's types yet: the app's worker is connecting
	// (or placement has not disseminated its types). Retry for a while,
	// as daprd retries actor calls with its built-in actor policy.
	deadline := time.Now().Add(e.hostWait)
	for {
		out, err := e.cfg.Actors.CallInternal(ctx, actorType, id, method, data)
		if err == nil || !errors.Is(err, placement.ErrNoAddress) || time.Now().After(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// noHostRetry bounds how long a call waits for a host of the engine's
// actor types.
const noHostRetry = 10 * time.Second

// Start creates an instance; it runs once a worker takes it. An empty id
// gets a random one; the id is returned.
func (e *Engine) Start(ctx context.Context, req *protos.CreateInstanceRequest) (string, error) {
	if req.GetName() == "" {
		return "", errors.New("workflow name is required")
	}
	if req.GetInstanceId() == "" {
		req.InstanceId = newID()
	}
	span, traceParent := e.startCreateSpan(ctx, req)
	defer span.End()
	ev := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{
		Name: req.GetName(), Version: req.GetVersion(), Input: req.GetInput(),
		WorkflowInstance:        &protos.WorkflowInstance{InstanceId: req.GetInstanceId(), ExecutionId: wrap(newID())},
		ScheduledStartTimestamp: req.GetScheduledStartTimestamp(), Tags: req.GetTags(), ParentTraceContext: traceParent,
	}}, Router: e.router()})
	began := time.Now()
	_, err := e.call(ctx, e.workflowType, req.GetInstanceId(), methodCreate, createData(ev, nil))
	e.operation(opCreate, began, err)
	if err != nil {
		return "", unwrapActorErr(err)
	}
	return req.GetInstanceId(), nil
}

// Get returns an instance's state (ErrNotFound if none). As daprd, it
// reads the actor state store rather than calling the instance's actor:
// it answers on a sidecar whose workers have not connected yet, and while
// the instance is busy.
func (e *Engine) Get(ctx context.Context, id string, withPayloads bool) (*protos.WorkflowState, error) {
	inst, err := e.loadDirect(ctx, id)
	if err != nil {
		return nil, err
	}
	st := inst.state()
	if st == nil {
		return nil, ErrNotFound
	}
	trimPayloads(st, withPayloads)
	return st, nil
}

// loadDirect reads an instance's state from the store, outside its
// actor's turn; ErrNotFound if it has none.
func (e *Engine) loadDirect(ctx context.Context, id string) (*instance, error) {
	if e.cfg.Actors == nil {
		return nil, ErrNoActors
	}
	inst, err := e.load(ctx, id)
	if err != nil {
		return nil, unwrapActorErr(err)
	}
	if !inst.exists || inst.started() == nil {
		return nil, ErrNotFound
	}
	return inst, nil
}

// History returns an instance's history events (ErrNotFound if none).
func (e *Engine) History(ctx context.Context, id string) ([]*protos.HistoryEvent, error) {
	inst, err := e.loadDirect(ctx, id)
	if err != nil {
		return nil, err
	}
	return inst.history, nil
}

// List pages through the IDs of the app's instances in the actor state
// store, as daprd lists them (the store must list keys: KeysLike). token
// continues a previous page; pageSize 0 returns all.
func (e *Engine) List(ctx context.Context, token *string, pageSize uint32) ([]string, *string, error) {
	if e.cfg.Actors == nil {
		return nil, nil, ErrNoActors
	}
	ids, next, err := e.cfg.Actors.ListActorIDs(ctx, e.workflowType, keyMetadata, token, pageSize)
	return ids, next, unwrapActorErr(err)
}

// Wait returns the instance's state once done(state) holds, or ctx ends.
// An instance that is purged while waited for (by hand, or at once by a
// retention policy) ends the wait with ErrNotFound. The state is read from
// the store once; after that, a change on this host hands the waiter the
// instance's new state, and an instance on another host is read again
// every half second.
func (e *Engine) Wait(ctx context.Context, id string, withPayloads bool, done func(*protos.WorkflowState) bool) (*protos.WorkflowState, error) {
	sub := e.watchers.subscribe(id)
	defer sub.release()
	ch, _ := sub.next()
	st, err := e.Get(ctx, id, withPayloads)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	seen := false
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if st != nil && done(st) {
			return st, nil
		}
		if st == nil && seen {
			// Purged since it was seen: by its retention policy right after
			// it ended, the ending is still known here.
			if f := e.watchers.final(id); f != nil && done(f) {
				trimPayloads(f, withPayloads)
				return f, nil
			}
			return nil, ErrNotFound
		}
		seen = seen || st != nil
		t.Reset(500 * time.Millisecond)
		var handed *protos.WorkflowState
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
			ch, handed = sub.next()
		case <-t.C:
			ch, _ = sub.next()
		}
		if handed != nil {
			st = handed
			trimPayloads(st, withPayloads)
			continue
		}
		if st, err = e.Get(ctx, id, withPayloads); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
}

// trimPayloads drops st's input, output and custom status unless the
// caller asked for them.
func trimPayloads(st *protos.WorkflowState, withPayloads bool) {
	if !withPayloads {
		st.Input, st.Output, st.CustomStatus = nil, nil, nil
	}
}

// RaiseEvent delivers an external event to an instance.
func (e *Engine) RaiseEvent(ctx context.Context, id, name string, input *wrapperspb.StringValue) error {
	return e.addEvent(ctx, id, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_EventRaised{
		EventRaised: &protos.EventRaisedEvent{Name: name, Input: input}}}))
}

// Terminate ends a running instance (and, if recursive, its children).
func (e *Engine) Terminate(ctx context.Context, id string, output *wrapperspb.StringValue, recursive bool) error {
	return e.addEvent(ctx, id, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionTerminated{
		ExecutionTerminated: &protos.ExecutionTerminatedEvent{Input: output, Recurse: recursive}}}))
}

// Suspend pauses a running instance: events wait until Resume.
func (e *Engine) Suspend(ctx context.Context, id string, reason *wrapperspb.StringValue) error {
	return e.addEvent(ctx, id, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionSuspended{
		ExecutionSuspended: &protos.ExecutionSuspendedEvent{Input: reason}}}))
}

// Resume continues a suspended instance.
func (e *Engine) Resume(ctx context.Context, id string, reason *wrapperspb.StringValue) error {
	return e.addEvent(ctx, id, stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_ExecutionResumed{
		ExecutionResumed: &protos.ExecutionResumedEvent{Input: reason}}}))
}

func (e *Engine) addEvent(ctx context.Context, id string, ev *protos.HistoryEvent) error {
	if ev.GetEventRaised() != nil {
		ev.Timestamp = e.uniqueEventTime() // its identity (eventdedup.go)
	}
	began := time.Now()
	_, err := e.call(ctx, e.workflowType, id, methodAddEvent, mustMarshal(ev))
	e.operation(opEvent, began, err)
	return unwrapActorErr(err)
}

// Purge deletes an ended instance's state (and, if recursive, its
// children's). It reports whether there was one to delete.
func (e *Engine) Purge(ctx context.Context, id string, recursive bool) (bool, error) {
	data := []byte{0}
	if recursive {
		data[0] = purgeRecursive
		// As daprd, a recursive purge reads the instance's state first
		// (it walks the children from it): a store that cannot be read
		// fails it here, with the store's error.
		if _, err := e.loadDirect(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	began := time.Now()
	// An instance the store does not have is answered at once, as daprd
	// answers it, rather than by an actor type that may not be hosted
	// yet (no worker connected).
	if _, err := e.loadDirect(ctx, id); errors.Is(err, ErrNotFound) {
		e.operation(opPurge, began, err)
		return false, nil
	}
	out, err := e.call(ctx, e.workflowType, id, methodPurge, data)
	e.operation(opPurge, began, err)
	if err != nil {
		return false, unwrapActorErr(err)
	}
	return len(out) > 0 && out[0] == 1, nil
}

// unwrapActorErr restores the engine's sentinel errors from an actor
// call's error (a remote host's arrive as text).
func unwrapActorErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrRecreate) {
		return err
	}
	if i := strings.Index(err.Error(), ErrRecreate.Error()); i >= 0 {
		// A remote host's refusal: its text from daprd's words on.
		return recreateErr{msg: err.Error()[i:]}
	}
	if x, ok := existsFrom(err); ok {
		return x
	}
	for _, s := range []error{ErrNotFound, ErrExists, ErrNotCompleted, ErrNoActors, ErrStalled} {
		if errors.Is(err, s) || containsText(err, s) {
			return fmt.Errorf("%w", s)
		}
	}
	if errors.Is(err, actors.ErrNoPlacement) {
		return ErrNoActors
	}
	return err
}

// Run keeps the engine's background work (activity runs, deliveries to
// other instances) going until ctx ends, then waits for it.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	// daprd's words: tools and tests look for them.
	e.log.Info("Workflow engine started")
	<-ctx.Done()
	e.bg.Wait()
	return nil
}

// goAsync runs f in the background under the engine's context; false if
// the engine has stopped (f does not run).
func (e *Engine) goAsync(f func(ctx context.Context)) bool {
	e.mu.Lock()
	ctx := e.ctx
	e.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Err() != nil {
		return false
	}
	e.bg.Go(func() { f(ctx) })
	return true
}

// kickStalled runs the instances that waited for a worker, and those
// parked by a stall (the new worker may have their version or patches).
func (e *Engine) kickStalled() {
	e.mu.Lock()
	var ids []string
	for k := range e.running {
		if id, ok := strings.CutPrefix(k, "stalled|"); ok {
			ids = append(ids, id)
			delete(e.running, k)
		}
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.kick(id)
	}
	e.unparkAll()
	e.rerunParkedActivities()
}
