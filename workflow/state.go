package workflow

import (
	"context"
	"fmt"
	"slices"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
)

// State keys of a workflow actor, Dapr's layout.
const (
	keyMetadata     = "metadata"
	keyCustomStatus = "customStatus"
	// maxEntries bounds the lengths read from metadata, as daprd's.
	maxEntries = 1_000_000
)

func historyKey(i int) string { return fmt.Sprintf("history-%06d", i) }
func inboxKey(i int) string   { return fmt.Sprintf("inbox-%06d", i) }

// instance is the loaded state of one workflow actor. Only the actor's
// turn touches it.
type instance struct {
	id           string
	exists       bool
	history      []*protos.HistoryEvent
	inbox        []*protos.HistoryEvent
	customStatus *wrapperspb.StringValue
	generation   uint64
	// turnContinues counts the times the instance continued as new in the
	// turn under way (run).
	turnContinues int
	// armed: this host stored the instance's watchdog reminder and has
	// not deleted it since.
	armed bool

	// What the store holds, to write only the difference.
	savedHistory, savedInbox int
	// savedInboxEvents is the inbox the store holds, event by event: a
	// save writes the inbox from the first entry that differs (by
	// identity), so that results arriving one by one during a fan-in do
	// not rewrite all those before them each time.
	savedInboxEvents  []*protos.HistoryEvent
	savedCustomStatus bool // the customStatus key is stored
	historyRewritten  bool

	sig signedHistory // its history's signatures (historysign.go)
	// incoming is the history the instance's parent propagated to it
	// (propagation.go); savedIncoming: its key is stored.
	incoming                       *protos.PropagatedHistory
	incomingChanged, savedIncoming bool
	// metaETag is the version of the metadata row loaded or last saved
	// (etag.go); nil: none known, the next save writes unconditionally.
	metaETag *string
}

// load reads an instance's state from the actor state store.
func (e *Engine) load(ctx context.Context, id string) (*instance, error) {
	inst := &instance{id: id}
	get := func(k string) ([]byte, error) {
		return e.cfg.Actors.GetState(ctx, e.workflowType, id, k)
	}
	b, tag, err := e.getMetadata(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load workflow %s metadata: %w", id, err)
	}
	if b == nil {
		return inst, nil
	}
	inst.metaETag = tag
	md := new(protos.BackendWorkflowStateMetadata)
	if err := unmarshal(b, md); err != nil {
		return nil, fmt.Errorf("workflow %s metadata: %w", id, err)
	}
	if md.GetHistoryLength() > maxEntries || md.GetInboxLength() > maxEntries {
		return nil, fmt.Errorf("workflow %s metadata claims %d history and %d inbox entries; more than %d", id, md.GetHistoryLength(), md.GetInboxLength(), maxEntries)
	}
	inst.exists, inst.generation = true, md.GetGeneration()
	readEvents := func(n uint64, key func(int) string, raw *[][]byte) ([]*protos.HistoryEvent, error) {
		out := make([]*protos.HistoryEvent, 0, n)
		for i := range int(n) {
			b, err := get(key(i))
			if err != nil {
				return nil, err
			}
			ev := new(protos.HistoryEvent)
			if err := unmarshal(b, ev); err != nil {
				return nil, fmt.Errorf("%s: %w", key(i), err)
			}
			out = append(out, ev)
			if raw != nil {
				*raw = append(*raw, b)
			}
		}
		return out, nil
	}
	if inst.history, err = readEvents(md.GetHistoryLength(), historyKey, &inst.sig.rawHistory); err != nil {
		return nil, fmt.Errorf("load workflow %s history: %w", id, err)
	}
	if inst.inbox, err = readEvents(md.GetInboxLength(), inboxKey, nil); err != nil {
		return nil, fmt.Errorf("load workflow %s inbox: %w", id, err)
	}
	if err := e.loadSignatures(inst, md, get); err != nil {
		return inst, fmt.Errorf("load workflow %s signatures: %w", id, err)
	}
	// The customStatus key may be missing (a store that lost it, or a
	// writer that never stored one): the purge deletes only what is
	// there, as a store such as Cosmos DB fails a transaction that
	// deletes a missing key.
	b, found, err := e.cfg.Actors.LookupState(ctx, e.workflowType, id, keyCustomStatus)
	if err != nil {
		return nil, fmt.Errorf("load workflow %s custom status: %w", id, err)
	}
	inst.savedCustomStatus = found
	if len(b) > 0 {
		cs := new(wrapperspb.StringValue)
		if unmarshal(b, cs) == nil {
			inst.customStatus = cs
		}
	}
	if inst.incoming, inst.savedIncoming, err = e.loadIncoming(ctx, id); err != nil {
		return nil, err
	}
	inst.savedHistory, inst.savedInbox = len(inst.history), len(inst.inbox)
	inst.savedInboxEvents = slices.Clone(inst.inbox)
	return inst, e.verifyHistory(inst)
}

// save writes what changed since the last load or save, atomically;
// fresh reports that the store told the metadata row's new ETag (else
// refreshETag reads it).
func (e *Engine) save(ctx context.Context, inst *instance) (fresh bool, err error) {
	var ops []actors.StateOp
	upsert := func(k string, v []byte) {
		if v == nil {
			v = []byte{}
		}
		op := actors.StateOp{Operation: "upsert", Raw: v}
		op.Request.Key = k
		ops = append(ops, op)
	}
	del := func(k string) {
		op := actors.StateOp{Operation: "delete"}
		op.Request.Key = k
		ops = append(ops, op)
	}
	from := inst.savedHistory
	if inst.historyRewritten {
		from = 0
	}
	signed, sigOps, err := e.signOps(inst, from, inst.historyRewritten)
	if err != nil {
		return false, fmt.Errorf("save workflow %s: %w", inst.id, err)
	}
	for i := from; i < len(inst.history); i++ {
		if signed != nil {
			upsert(historyKey(i), signed[i-from])
			continue
		}
		upsert(historyKey(i), mustMarshal(inst.history[i]))
	}
	ops = append(ops, sigOps...)
	for i := len(inst.history); i < inst.savedHistory; i++ {
		del(historyKey(i))
	}
	same := 0
	for same < len(inst.inbox) && same < len(inst.savedInboxEvents) && inst.inbox[same] == inst.savedInboxEvents[same] {
		same++
	}
	for i := same; i < len(inst.inbox); i++ {
		upsert(inboxKey(i), mustMarshal(inst.inbox[i]))
	}
	for i := len(inst.inbox); i < inst.savedInbox; i++ {
		del(inboxKey(i))
	}
	cs := inst.customStatus
	if cs == nil {
		cs = &wrapperspb.StringValue{}
	}
	upsert(keyCustomStatus, mustMarshal(cs))
	if inst.incomingChanged {
		if inst.incoming != nil {
			upsert(keyPropagatedHistory, mustMarshal(inst.incoming))
		} else if inst.savedIncoming {
			del(keyPropagatedHistory)
		}
	}
	upsert(keyMetadata, mustMarshal(inst.sig.signingMetadata(&protos.BackendWorkflowStateMetadata{
		InboxLength: uint64(len(inst.inbox)), HistoryLength: uint64(len(inst.history)), Generation: inst.generation,
	})))
	// The metadata row is the instance's version: a store changed since
	// the load fails the whole transaction (etag.go).
	ops[len(ops)-1].ETag = inst.metaETag
	if h, ok := e.cfg.Actors.(etagSaver); ok {
		tags, err := h.TransactStateETags(ctx, e.workflowType, inst.id, ops)
		if err != nil {
			return false, fmt.Errorf("save workflow %s: %w", inst.id, err)
		}
		if tag, ok := tags[keyMetadata]; ok {
			inst.metaETag, fresh = &tag, true
		}
	} else if err := e.cfg.Actors.TransactState(ctx, e.workflowType, inst.id, ops); err != nil {
		return false, fmt.Errorf("save workflow %s: %w", inst.id, err)
	}
	inst.savedHistory, inst.savedInbox, inst.historyRewritten = len(inst.history), len(inst.inbox), false
	inst.savedInboxEvents = slices.Clone(inst.inbox)
	inst.sig.signedSaved()
	inst.exists, inst.savedCustomStatus = true, true
	if inst.incomingChanged {
		inst.savedIncoming, inst.incomingChanged = inst.incoming != nil, false
	}
	return fresh, nil
}

// purge deletes every key of the instance, in its actor's turn or, with
// direct, outside (force purge).
func (e *Engine) purge(ctx context.Context, inst *instance, direct bool) error {
	var ops []actors.StateOp
	del := func(k string) {
		op := actors.StateOp{Operation: "delete"}
		op.Request.Key = k
		ops = append(ops, op)
	}
	for i := range inst.savedHistory {
		del(historyKey(i))
	}
	for i := range inst.savedInbox {
		del(inboxKey(i))
	}
	if inst.savedCustomStatus {
		del(keyCustomStatus)
	}
	for _, k := range inst.sig.purgeKeys() {
		del(k)
	}
	if inst.savedIncoming {
		del(keyPropagatedHistory)
	}
	del(keyMetadata)
	transact := e.cfg.Actors.TransactState
	if direct {
		transact = e.cfg.Actors.TransactStateDirect
	}
	if err := transact(ctx, e.workflowType, inst.id, ops); err != nil {
		return fmt.Errorf("purge workflow %s: %w", inst.id, err)
	}
	return nil
}

// started is the instance's ExecutionStarted event, nil if none.
func (inst *instance) started() *protos.ExecutionStartedEvent {
	for _, ev := range inst.history {
		if s := ev.GetExecutionStarted(); s != nil {
			return s
		}
	}
	for _, ev := range inst.inbox {
		if s := ev.GetExecutionStarted(); s != nil {
			return s
		}
	}
	return nil
}

// ref is the instance as its activities and children name it: its ID
// (a rerun instance's ExecutionStarted event still names its source) and
// the execution of its ExecutionStarted event.
func (inst *instance) ref() *protos.WorkflowInstance {
	return &protos.WorkflowInstance{InstanceId: inst.id, ExecutionId: inst.started().GetWorkflowInstance().GetExecutionId()}
}

// completed is the instance's ExecutionCompleted event, nil if running.
func (inst *instance) completed() *protos.ExecutionCompletedEvent {
	for i := len(inst.history) - 1; i >= 0; i-- {
		if c := inst.history[i].GetExecutionCompleted(); c != nil {
			return c
		}
	}
	return nil
}

// state is the instance as GetInstance reports it.
func (inst *instance) state() *protos.WorkflowState {
	s := inst.started()
	if s == nil {
		return nil
	}
	st := &protos.WorkflowState{
		InstanceId: inst.id, Name: s.GetName(), Version: versionOf(inst.history), Input: s.GetInput(),
		WorkflowStatus:          protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING,
		ScheduledStartTimestamp: s.GetScheduledStartTimestamp(), CustomStatus: inst.customStatus,
		ExecutionId: s.GetWorkflowInstance().GetExecutionId(), Tags: s.GetTags(),
	}
	if p := s.GetParentInstance(); p != nil {
		st.ParentInstanceId = wrap(p.GetWorkflowInstance().GetInstanceId())
	}
	suspended, stalled := false, false
	for _, ev := range inst.history {
		switch {
		case ev.GetExecutionStalled() != nil:
			stalled = true
		case ev.GetExecutionStarted() != nil:
			st.CreatedTimestamp = ev.GetTimestamp()
		case ev.GetWorkflowStarted() != nil:
			stalled = false
			if st.WorkflowStatus == protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING {
				st.WorkflowStatus = protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING
				st.StartedAt = ev.GetTimestamp()
			}
		case ev.GetExecutionSuspended() != nil:
			suspended = true
		case ev.GetExecutionResumed() != nil:
			suspended = false
		case ev.GetExecutionCompleted() != nil:
			c := ev.GetExecutionCompleted()
			st.WorkflowStatus, st.Output, st.FailureDetails = c.GetWorkflowStatus(), c.GetResult(), c.GetFailureDetails()
			st.CompletedTimestamp = ev.GetTimestamp()
		}
		st.LastUpdatedTimestamp = ev.GetTimestamp()
	}
	if st.CreatedTimestamp == nil {
		for _, ev := range inst.inbox {
			if ev.GetExecutionStarted() != nil {
				st.CreatedTimestamp, st.LastUpdatedTimestamp = ev.GetTimestamp(), ev.GetTimestamp()
			}
		}
	}
	if suspended && st.CompletedTimestamp == nil {
		st.WorkflowStatus = protos.OrchestrationStatus_ORCHESTRATION_STATUS_SUSPENDED
	}
	if stalled && st.CompletedTimestamp == nil {
		st.WorkflowStatus = protos.OrchestrationStatus_ORCHESTRATION_STATUS_STALLED
	}
	return st
}
