package workflow

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/components/state"
)

// etagMemHost is a memHost whose keys have versions, as the actor state
// stores': a transaction that names a stale ETag fails whole. It records
// the ETags the metadata upserts named.
type etagMemHost struct {
	*memHost
	vmu      sync.Mutex
	versions map[string]int // {actor ID}||{key}
	metaTags []*string
}

func newETagMemHost() *etagMemHost {
	return &etagMemHost{memHost: newMemHost(), versions: map[string]int{}}
}

func (h *etagMemHost) GetStateETag(ctx context.Context, actorType, actorID, key string) ([]byte, *string, error) {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	b, ok, err := h.LookupState(ctx, actorType, actorID, key)
	if err != nil || !ok {
		return nil, nil, err
	}
	v := strconv.Itoa(h.versions[actorID+"||"+key])
	return b, &v, nil
}

func (h *etagMemHost) TransactState(ctx context.Context, actorType, actorID string, ops []actors.StateOp) error {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	for _, op := range ops {
		if op.Request.Key == keyMetadata && op.Operation == "upsert" {
			h.metaTags = append(h.metaTags, op.ETag)
		}
		if op.ETag != nil && *op.ETag != strconv.Itoa(h.versions[actorID+"||"+op.Request.Key]) {
			return state.ErrETagMismatch
		}
	}
	if err := h.memHost.TransactState(ctx, actorType, actorID, ops); err != nil {
		return err
	}
	for _, op := range ops {
		h.versions[actorID+"||"+op.Request.Key]++
	}
	return nil
}

// peerWrite is another writer's change of an instance's metadata row.
func (h *etagMemHost) peerWrite(actorID string) {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	h.versions[actorID+"||"+keyMetadata]++
}

func (h *etagMemHost) tags() []*string {
	h.vmu.Lock()
	defer h.vmu.Unlock()
	return append([]*string(nil), h.metaTags...)
}

// runEngine starts an engine on host until the test ends.
func runEngine(t *testing.T, host Host) (*Engine, context.Context) {
	t.Helper()
	e := New(Config{AppID: "app", Actors: host})
	e.host()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); e.bg.Wait() })
	go func() { _ = e.Run(ctx) }()
	return e, ctx
}

// eventsThenDone answers runs by waiting until n EventRaised events
// arrived, then completing with their inputs joined; seen counts them.
func eventsThenDone(n int, seen *[]string, mu *sync.Mutex) func(*protos.WorkflowRequest) *protos.WorkflowResponse {
	return func(req *protos.WorkflowRequest) *protos.WorkflowResponse {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range req.GetNewEvents() {
			if r := ev.GetEventRaised(); r != nil {
				*seen = append(*seen, r.GetInput().GetValue())
			}
		}
		if len(*seen) < n {
			return &protos.WorkflowResponse{}
		}
		return &protos.WorkflowResponse{Actions: []*protos.WorkflowAction{{WorkflowActionType: &protos.WorkflowAction_CompleteWorkflow{
			CompleteWorkflow: &protos.CompleteWorkflowAction{WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED,
				Result: wrapperspb.String(strings.Join(*seen, ""))}}}}}
	}
}

// waitHistory waits until the instance's stored history satisfies ok.
func waitHistory(t *testing.T, e *Engine, id string, ok func([]*protos.HistoryEvent) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := e.History(context.Background(), id)
		if err == nil && ok(h) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of %s: %v (%v)", id, kinds(h), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSaveNamesMetadataETag: an instance's first save writes its metadata
// unconditionally, every later one names the version it loaded or last
// saved; a save that finds the row changed by another writer fails, and
// the next call works on what the store holds.
func TestSaveNamesMetadataETag(t *testing.T) {
	host := newETagMemHost()
	e, ctx := runEngine(t, host)
	var (
		mu   sync.Mutex
		seen []string
	)
	stop := serveWorker(t, e, eventsThenDone(2, &seen, &mu))
	defer stop()
	id, err := e.Start(ctx, &protos.CreateInstanceRequest{Name: "w", InstanceId: "i"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING)
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("a")); err != nil {
		t.Fatal(err)
	}
	waitHistory(t, e, id, func(h []*protos.HistoryEvent) bool {
		return slices.ContainsFunc(h, func(ev *protos.HistoryEvent) bool { return ev.GetEventRaised() != nil })
	})
	host.peerWrite(id)
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("b")); !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("event saved over another writer's change: %v", err)
	}
	if err := e.RaiseEvent(ctx, id, "go", wrapperspb.String("b")); err != nil {
		t.Fatalf("event after the conflict: %v", err)
	}
	waitStatus(t, e, id, protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED)
	tags := host.tags()
	if len(tags) < 3 {
		t.Fatalf("%d metadata upserts, want at least 3", len(tags))
	}
	if tags[0] != nil {
		t.Errorf("the create named ETag %q, want none", *tags[0])
	}
	for i, tag := range tags[1:] {
		if tag == nil {
			t.Errorf("metadata upsert %d named no ETag", i+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, ""); got != "ab" {
		t.Errorf("the workflow saw events %q, want ab", got)
	}
}
