package pool

import (
	"context"
	"io"
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
)

func TestShare(t *testing.T) {
	for _, c := range []struct{ limit, replicas, index, want uint32 }{
		{5, 1, 0, 5}, {5, 0, 0, 5},
		{5, 3, 0, 2}, {5, 3, 1, 2}, {5, 3, 2, 1},
		{6, 3, 2, 2},
		{1, 3, 0, 1}, {1, 3, 2, 1}, // never below one
	} {
		if got := share(c.limit, c.replicas, c.index); got != c.want {
			t.Errorf("share(%d, %d, %d) = %d, want %d", c.limit, c.replicas, c.index, got, c.want)
		}
	}
}

// holder is a sidecar that answers only when told to.
type holder struct {
	ctx    context.Context
	cancel context.CancelFunc
	sent   chan *schedulerv1.WatchJobsResponse
	toSrv  chan *schedulerv1.WatchJobsRequest
}

func newHolder() *holder {
	ctx, cancel := context.WithCancel(context.Background())
	return &holder{ctx: ctx, cancel: cancel, sent: make(chan *schedulerv1.WatchJobsResponse, 16), toSrv: make(chan *schedulerv1.WatchJobsRequest, 16)}
}

func (h *holder) Context() context.Context { return h.ctx }

func (h *holder) Send(r *schedulerv1.WatchJobsResponse) error { h.sent <- r; return nil }

func (h *holder) Recv() (*schedulerv1.WatchJobsRequest, error) {
	select {
	case r := <-h.toSrv:
		return r, nil
	case <-h.ctx.Done():
		return nil, io.EOF
	}
}

func (h *holder) answer(id uint64, status Result) {
	h.toSrv <- &schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Result{
		Result: &schedulerv1.WatchJobsRequestResult{Id: id, Status: status}}}
}

// next is the next tick the holder got, nil when none comes in d.
func (h *holder) next(d time.Duration) *schedulerv1.WatchJobsResponse {
	select {
	case r := <-h.sent:
		return r
	case <-time.After(d):
		return nil
	}
}

func reminderTick(actorType, id string, key *string) Tick {
	return Tick{Name: id, Metadata: &schedulerv1.JobMetadata{Namespace: "ns", AppId: "app", ConcurrencyKey: key,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{Actor: &schedulerv1.TargetActorReminder{Type: actorType, Id: id}}}}}
}

func limit(actorType string, name *string, n int32) *schedulerv1.ConcurrencyLimit {
	return &schedulerv1.ConcurrencyLimit{MaxConcurrent: n, Name: name,
		Target: &schedulerv1.ConcurrencyLimit_Actor{Actor: &schedulerv1.ConcurrencyLimitActor{Type: actorType}}}
}

func serveHolder(t *testing.T, p *Pool, initial *schedulerv1.WatchJobsRequestInitial) *holder {
	t.Helper()
	h := newHolder()
	done := make(chan struct{})
	go func() { _ = p.Serve(context.Background(), initial, h); close(done) }()
	t.Cleanup(func() { h.cancel(); <-done })
	return h
}

// deliverAll starts a delivery of each tick and returns their results'
// channel.
func deliverAll(t *testing.T, p *Pool, ticks ...Tick) <-chan Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan Result, len(ticks))
	done := make(chan struct{}, len(ticks))
	for _, tk := range ticks {
		go func() {
			defer func() { done <- struct{}{} }()
			if r, err := p.Deliver(ctx, tk); err == nil {
				res <- r
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range ticks {
			<-done
		}
	})
	return res
}

func TestATypeLimitHoldsTicksUntilASlotIsFreed(t *testing.T) {
	p := New(nil, Hooks{})
	h := serveHolder(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app", ActorTypes: []string{"t", "u"},
		ConcurrencyLimits: []*schedulerv1.ConcurrencyLimit{limit("t", nil, 1)}})
	waitConnected(t, p, 1)
	deliverAll(t, p, reminderTick("t", "1", nil), reminderTick("t", "2", nil), reminderTick("u", "3", nil))
	got := map[string]uint64{}
	for range 2 {
		r := h.next(2 * time.Second)
		if r == nil {
			t.Fatalf("only %v delivered", got)
		}
		got[r.GetName()] = r.GetId()
	}
	if _, ok := got["3"]; !ok {
		t.Fatalf("the ungated type's tick was held: %v", got)
	}
	if r := h.next(200 * time.Millisecond); r != nil {
		t.Fatalf("%s delivered past the limit of 1", r.GetName())
	}
	// A FAILED answer frees the slot as well.
	for name, id := range got {
		if name != "3" {
			h.answer(id, schedulerv1.WatchJobsRequestResultStatus_FAILED)
		}
	}
	if r := h.next(2 * time.Second); r == nil {
		t.Fatal("the held tick was not delivered after the slot was freed")
	}
}

func TestNamedLimitsAreIndependent(t *testing.T) {
	slow, fast := new("slow"), new("fast")
	p := New(nil, Hooks{})
	h := serveHolder(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app", ActorTypes: []string{"t"},
		ConcurrencyLimits: []*schedulerv1.ConcurrencyLimit{limit("t", slow, 1), limit("t", new("other"), 0)}})
	waitConnected(t, p, 1)
	deliverAll(t, p, reminderTick("t", "s1", slow), reminderTick("t", "s2", slow), reminderTick("t", "f1", fast), reminderTick("t", "f2", fast))
	n := 0
	for h.next(500*time.Millisecond) != nil {
		n++
	}
	if n != 3 {
		t.Fatalf("%d ticks under way, want 3 (both fast ones and one slow one)", n)
	}
}

func TestAGateGoesWithTheLastStreamThatNamesIt(t *testing.T) {
	p := New(nil, Hooks{})
	initial := &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app", ActorTypes: []string{"t"},
		ConcurrencyLimits: []*schedulerv1.ConcurrencyLimit{limit("t", nil, 1)}}
	ctx, cancel := context.WithCancel(context.Background())
	first := newHolder()
	done := make(chan struct{})
	go func() { _ = p.Serve(ctx, initial, first); close(done) }()
	waitConnected(t, p, 1)
	deliverAll(t, p, reminderTick("t", "1", nil), reminderTick("t", "2", nil))
	if first.next(2*time.Second) == nil {
		t.Fatal("nothing delivered")
	}
	// The stream goes away without answering: its slot is freed, and the
	// next stream gets both ticks (the limit is its own again).
	cancel()
	first.cancel()
	<-done
	second := serveHolder(t, p, initial)
	r := second.next(2 * time.Second)
	if r == nil {
		t.Fatal("nothing delivered to the second stream")
	}
	if second.next(200*time.Millisecond) != nil {
		t.Fatal("two ticks under way past the second stream's limit of 1")
	}
	second.answer(r.GetId(), schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	if second.next(2*time.Second) == nil {
		t.Fatal("the second tick was not delivered")
	}
}

func TestUndeliveredIsToldOncePerTick(t *testing.T) {
	told := make(chan string, 4)
	p := New(nil, Hooks{Undelivered: func(m *schedulerv1.JobMetadata) { told <- m.GetAppId() }})
	res := deliverAll(t, p, jobTick("ns", "app", "x"))
	if got := <-told; got != "app" {
		t.Fatalf("told about %q", got)
	}
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "other"}, newSidecar(0))
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, newSidecar(0))
	<-res
	select {
	case <-told:
		t.Fatal("told twice")
	default:
	}
}
