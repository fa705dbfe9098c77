package api

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/subscriptions"
	"github.com/tandemrun/tandem/resiliency"
)

// resiliencySet builds the policies of app "me" from a spec body.
func resiliencySet(t *testing.T, spec string) func() *resiliency.Set {
	t.Helper()
	docs, _, err := resiliency.Parse("r.yaml", []byte("kind: Resiliency\nspec:\n"+spec))
	if err != nil {
		t.Fatal(err)
	}
	set, err := resiliency.Build("me", docs)
	if err != nil {
		t.Fatal(err)
	}
	return func() *resiliency.Set { return set }
}

const componentPolicies = `
  policies:
    retries:
      twice: {policy: constant, duration: 1ms, maxRetries: 2}
  targets:
    components:
      pubsub:
        inbound: {retry: twice}
        outbound: {retry: twice}
      store:
        outbound: {retry: twice}
`

// scriptedDeliverer answers with verdicts in order, the last repeating.
type scriptedDeliverer struct {
	mu       sync.Mutex
	verdicts []subscriptions.Status
	calls    int
}

func (d *scriptedDeliverer) Deliver(context.Context, *subscriptions.Message) (subscriptions.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	st := d.verdicts[min(d.calls, len(d.verdicts))-1]
	if st == subscriptions.Retry {
		return st, errors.New("app answered 500")
	}
	return st, nil
}

func TestInboundDelivererRetries(t *testing.T) {
	tests := []struct {
		name     string
		pubsub   string
		verdicts []subscriptions.Status
		want     subscriptions.Status
		calls    int
	}{
		{"retried until accepted", "pubsub", []subscriptions.Status{subscriptions.Retry, subscriptions.Retry, subscriptions.Success}, subscriptions.Success, 3},
		{"given up: back to the broker", "pubsub", []subscriptions.Status{subscriptions.Retry}, subscriptions.Retry, 3},
		{"drop is final", "pubsub", []subscriptions.Status{subscriptions.Drop}, subscriptions.Drop, 1},
		{"404 discard is final", "pubsub", []subscriptions.Status{subscriptions.Discard}, subscriptions.Discard, 1},
		{"no policy for the component", "other", []subscriptions.Status{subscriptions.Retry, subscriptions.Success}, subscriptions.Retry, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := &scriptedDeliverer{verdicts: tt.verdicts}
			d := inboundDeliverer{next: next, policies: resiliencySet(t, componentPolicies), pubsubName: tt.pubsub}
			st, err := d.Deliver(context.Background(), &subscriptions.Message{})
			if st != tt.want {
				t.Errorf("status = %v, want %v", st, tt.want)
			}
			if (st == subscriptions.Retry) != (err != nil) {
				t.Errorf("err = %v with status %v: a Retry must carry its reason, nothing else an error", err, st)
			}
			if next.calls != tt.calls {
				t.Errorf("deliveries = %d, want %d", next.calls, tt.calls)
			}
		})
	}
}

func TestOutboundRetries(t *testing.T) {
	pol := resiliencySet(t, componentPolicies)
	tests := []struct {
		name  string
		store string
		err   error
		calls int
	}{
		{"transient failure retried", "store", errors.New("connection reset"), 3},
		{"etag mismatch not retried", "store", state.ErrETagMismatch, 1},
		{"no policy", "nostore", errors.New("connection reset"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := outboundErr(context.Background(), pol, tt.store, func(context.Context) error {
				calls++
				return tt.err
			})
			if calls != tt.calls {
				t.Errorf("calls = %d, want %d", calls, tt.calls)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.err)
			}
			if tt.calls > 1 && !strings.Contains(err.Error(), "gave up after 3 attempt(s)") {
				t.Errorf("err = %v, want the policy's give-up message", err)
			}
		})
	}
}

// bulkApp is a fake bulk subscriber: answer gives the verdict for an entry
// on its nth delivery (from 1); every call's entry ids are recorded.
type bulkApp struct {
	mu     sync.Mutex
	answer func(id string, nth int) subscriptions.Status
	seen   map[string]int
	calls  [][]string
	// short, when set, answers only for the first entry of each call.
	short bool
	// block, when set, makes the first call ignore its context and answer
	// only once block is closed.
	block chan struct{}
}

func (a *bulkApp) Deliver(context.Context, *subscriptions.Message) (subscriptions.Status, error) {
	return subscriptions.Retry, errors.New("single delivery to a bulk app")
}

func (a *bulkApp) DeliverBulk(_ context.Context, b *subscriptions.BulkMessage) ([]subscriptions.Status, error) {
	a.mu.Lock()
	ids := make([]string, len(b.Entries))
	for i, e := range b.Entries {
		ids[i] = e.EntryID
	}
	a.calls = append(a.calls, ids)
	block := a.block
	a.block = nil
	a.mu.Unlock()
	if block != nil {
		<-block
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string]int{}
	}
	var out []subscriptions.Status
	retries := 0
	for _, id := range ids {
		a.seen[id]++
		st := a.answer(id, a.seen[id])
		if st == subscriptions.Retry {
			retries++
		}
		out = append(out, st)
		if a.short {
			break
		}
	}
	switch {
	case len(out) > 0 && out[0] == subscriptions.Discard:
		return out, errors.New("app has no handler for the batch (404)")
	case retries > 0:
		return out, errors.New("app asked to retry some entries")
	}
	return out, nil
}

func (a *bulkApp) callIDs() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]string(nil), a.calls...)
}

func bulkOf(ids ...string) *subscriptions.BulkMessage {
	b := &subscriptions.BulkMessage{Topic: "t", PubsubName: "pubsub", Path: "/bulk", Metadata: map[string]string{"pubsubName": "pubsub"}}
	for _, id := range ids {
		b.Entries = append(b.Entries, subscriptions.BulkEntry{EntryID: id, Message: &subscriptions.Message{Path: "/bulk"}})
	}
	return b
}

// verdicts answers per entry id: the first string is the verdicts of the
// entry's deliveries in order, the last repeating ("S" success, "R" retry,
// "D" drop, "X" discard).
func verdicts(script map[string]string) func(string, int) subscriptions.Status {
	return func(id string, nth int) subscriptions.Status {
		s := script[id]
		switch s[min(nth, len(s))-1] {
		case 'S':
			return subscriptions.Success
		case 'D':
			return subscriptions.Drop
		case 'X':
			return subscriptions.Discard
		}
		return subscriptions.Retry
	}
}

func TestInboundBulkDeliverer(t *testing.T) {
	S, R, D, X := subscriptions.Success, subscriptions.Retry, subscriptions.Drop, subscriptions.Discard
	tests := []struct {
		name   string
		pubsub string
		script map[string]string
		short  bool
		want   []subscriptions.Status
		calls  [][]string
	}{
		{
			name: "only the entries answered RETRY are sent again", pubsub: "pubsub",
			script: map[string]string{"a": "S", "b": "RS", "c": "D", "d": "RS"},
			want:   []subscriptions.Status{S, S, D, S},
			calls:  [][]string{{"a", "b", "c", "d"}, {"b", "d"}},
		},
		{
			name: "each retry narrows to what is still unsettled", pubsub: "pubsub",
			script: map[string]string{"a": "RD", "b": "RRS", "c": "S"},
			want:   []subscriptions.Status{D, S, S},
			calls:  [][]string{{"a", "b", "c"}, {"a", "b"}, {"b"}},
		},
		{
			name: "given up: the unsettled entry stays RETRY for the broker", pubsub: "pubsub",
			script: map[string]string{"a": "S", "b": "R", "c": "RS"},
			want:   []subscriptions.Status{S, R, S},
			calls:  [][]string{{"a", "b", "c"}, {"b", "c"}, {"b"}},
		},
		{
			name: "a failed call retries the whole batch", pubsub: "pubsub",
			script: map[string]string{"a": "RS", "b": "RS"},
			want:   []subscriptions.Status{S, S},
			calls:  [][]string{{"a", "b"}, {"a", "b"}},
		},
		{
			name: "entries the app did not answer for are retried", pubsub: "pubsub", short: true,
			script: map[string]string{"a": "S", "b": "S", "c": "S"},
			want:   []subscriptions.Status{S, S, S},
			calls:  [][]string{{"a", "b", "c"}, {"b", "c"}, {"c"}},
		},
		{
			name: "404 discard is final", pubsub: "pubsub",
			script: map[string]string{"a": "X", "b": "X"},
			want:   []subscriptions.Status{X, X},
			calls:  [][]string{{"a", "b"}},
		},
		{
			name: "no policy for the component: one call", pubsub: "other",
			script: map[string]string{"a": "S", "b": "RS"},
			want:   []subscriptions.Status{S, R},
			calls:  [][]string{{"a", "b"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &bulkApp{answer: verdicts(tt.script), short: tt.short}
			d := newInboundDeliverer(app, resiliencySet(t, componentPolicies), tt.pubsub).(subscriptions.BulkDeliverer)
			b := bulkOf(tt.calls[0]...)
			got, err := d.DeliverBulk(context.Background(), b)
			if !slices.Equal(got, tt.want) {
				t.Errorf("verdicts = %v, want %v", got, tt.want)
			}
			unsettled := slices.Contains(got, R) || slices.Contains(got, X)
			if unsettled != (err != nil) {
				t.Errorf("err = %v with verdicts %v: RETRY and DISCARD carry their reason, nothing else an error", err, got)
			}
			if calls := app.callIDs(); !reflect.DeepEqual(calls, tt.calls) {
				t.Errorf("calls = %v, want %v", calls, tt.calls)
			}
			if len(b.Entries) != len(tt.calls[0]) {
				t.Errorf("the caller's batch was changed: %d entries", len(b.Entries))
			}
		})
	}
}

// TestInboundBulkDelivererGivesUp: the policy's give-up reason reaches the
// caller with the entries left to the broker, also when the breaker stops
// the batch before the app sees it.
func TestInboundBulkDelivererGivesUp(t *testing.T) {
	t.Run("retries spent", func(t *testing.T) {
		app := &bulkApp{answer: verdicts(map[string]string{"a": "R"})}
		d := newInboundDeliverer(app, resiliencySet(t, componentPolicies), "pubsub").(subscriptions.BulkDeliverer)
		got, err := d.DeliverBulk(context.Background(), bulkOf("a"))
		if !slices.Equal(got, []subscriptions.Status{subscriptions.Retry}) || err == nil || !strings.Contains(err.Error(), "gave up after 3 attempt(s)") {
			t.Errorf("DeliverBulk = %v, %v; want RETRY with the policy's give-up message", got, err)
		}
	})
	t.Run("breaker open", func(t *testing.T) {
		policies := resiliencySet(t, `
  policies:
    circuitBreakers:
      cb: {maxRequests: 1, timeout: 1h, trip: consecutiveFailures > 0}
  targets:
    components:
      pubsub:
        inbound: {circuitBreaker: cb}
`)
		app := &bulkApp{answer: verdicts(map[string]string{"a": "R", "b": "S"})}
		d := newInboundDeliverer(app, policies, "pubsub").(subscriptions.BulkDeliverer)
		if got, _ := d.DeliverBulk(context.Background(), bulkOf("a")); got[0] != subscriptions.Retry {
			t.Fatalf("first batch = %v", got)
		}
		got, err := d.DeliverBulk(context.Background(), bulkOf("b"))
		if !slices.Equal(got, []subscriptions.Status{subscriptions.Retry}) || !errors.Is(err, resiliency.ErrBreakerOpen) {
			t.Errorf("DeliverBulk with the breaker open = %v, %v; want RETRY and the breaker's error", got, err)
		}
		if n := len(app.callIDs()); n != 1 {
			t.Errorf("app calls = %d, want 1 (the open breaker keeps the second batch from the app)", n)
		}
	})
}

// TestInboundBulkDelivererHotReload: the policy is read per batch.
func TestInboundBulkDelivererHotReload(t *testing.T) {
	var mu sync.Mutex
	var cur *resiliency.Set
	policies := func() *resiliency.Set { mu.Lock(); defer mu.Unlock(); return cur }
	app := &bulkApp{answer: verdicts(map[string]string{"a": "RS", "b": "RS"})}
	d := newInboundDeliverer(app, policies, "pubsub").(subscriptions.BulkDeliverer)

	if got, _ := d.DeliverBulk(context.Background(), bulkOf("a")); got[0] != subscriptions.Retry {
		t.Fatalf("without a policy: %v, want RETRY after one call", got)
	}
	mu.Lock()
	cur = resiliencySet(t, componentPolicies)()
	mu.Unlock()
	if got, err := d.DeliverBulk(context.Background(), bulkOf("b")); got[0] != subscriptions.Success || err != nil {
		t.Errorf("after the reload: %v, %v; want SUCCESS on the retry", got, err)
	}
	if calls := app.callIDs(); !reflect.DeepEqual(calls, [][]string{{"a"}, {"b"}, {"b"}}) {
		t.Errorf("calls = %v", calls)
	}
}

// TestInboundBulkDelivererLateAnswer: an attempt abandoned at its timeout
// still records the app's late answer, and the entries it settled are
// not sent again.
func TestInboundBulkDelivererLateAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		policies := resiliencySet(t, `
  policies:
    timeouts:
      short: 10ms
    retries:
      slow: {policy: constant, duration: 30ms, maxRetries: 2}
  targets:
    components:
      pubsub:
        inbound: {timeout: short, retry: slow}
`)
		block := make(chan struct{})
		app := &bulkApp{answer: verdicts(map[string]string{"a": "S", "b": "RS"}), block: block}
		d := newInboundDeliverer(app, policies, "pubsub").(subscriptions.BulkDeliverer)
		// The first call answers at 20ms, after its timeout (10ms) and
		// before the retry (40ms).
		time.AfterFunc(20*time.Millisecond, func() { close(block) })
		got, err := d.DeliverBulk(context.Background(), bulkOf("a", "b"))
		if !slices.Equal(got, []subscriptions.Status{subscriptions.Success, subscriptions.Success}) || err != nil {
			t.Errorf("DeliverBulk = %v, %v; want both SUCCESS", got, err)
		}
		if calls := app.callIDs(); !reflect.DeepEqual(calls, [][]string{{"a", "b"}, {"b"}}) {
			t.Errorf("calls = %v; want the retry to send only b", calls)
		}
	})
}

// TestNewInboundDeliverer: the wrapper takes batches exactly when the
// subscriber does.
func TestNewInboundDeliverer(t *testing.T) {
	policies := resiliencySet(t, componentPolicies)
	if _, ok := newInboundDeliverer(&scriptedDeliverer{}, policies, "pubsub").(subscriptions.BulkDeliverer); ok {
		t.Error("a single-event subscriber's wrapper offers batches")
	}
	if _, ok := newInboundDeliverer(&bulkApp{}, policies, "pubsub").(subscriptions.BulkDeliverer); !ok {
		t.Error("a bulk subscriber's wrapper does not take batches")
	}
}

// TestBulkSubscriptionUnderInboundPolicy runs a bulk subscription over the
// in-memory broker with an inbound retry policy: the entry the app asks to
// retry is sent again in the same sidecar call, alone and with its entry
// id (a broker redelivery would come as a new entry), and the entries the
// app accepted are not sent again.
func TestBulkSubscriptionUnderInboundPolicy(t *testing.T) {
	_, reg := pubsubRegistry(t)
	var mu sync.Mutex
	var calls [][]string
	var flaky string
	seen := map[string]int{}
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/bulk",
		"bulkSubscribe":{"enabled":true,"maxMessagesCount":3,"maxAwaitDurationMs":50}}]`}
	app.answer = func(_ string, env map[string]any) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		entries, _ := env["entries"].([]any)
		var ids []string
		var statuses []string
		for _, e := range entries {
			e, _ := e.(map[string]any)
			id, _ := e["entryId"].(string)
			ev, _ := e["event"].(map[string]any)
			data, _ := ev["data"].(map[string]any)
			ids = append(ids, id)
			seen[id]++
			st := "SUCCESS"
			if data["flaky"] == true && seen[id] == 1 {
				flaky, st = id, "RETRY"
			}
			statuses = append(statuses, `{"entryId":"`+id+`","status":"`+st+`"}`)
		}
		calls = append(calls, ids)
		return 200, `{"statuses":[` + strings.Join(statuses, ",") + `]}`
	}
	a := startSubApp(t, app)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app", Resiliency: resiliencySet(t, `
  policies:
    retries:
      twice: {policy: constant, duration: 1ms, maxRetries: 2}
  targets:
    components:
      ps:
        inbound: {retry: twice}
`)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, a) }()
	waitUntil(t, "subscription", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 1
	})
	for _, data := range []string{`{"n":1}`, `{"flaky":true}`, `{"n":2}`} {
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "orders", Data: []byte(data), ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "every entry accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, ids := range calls {
			total += len(ids)
		}
		return total == 4
	})
	time.Sleep(50 * time.Millisecond) // room for a wrong extra delivery
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Errorf("entries = %v, want 3 (the broker redelivered: the sidecar did not retry)", seen)
	}
	var retry []string
	for _, ids := range calls {
		if slices.Contains(ids, flaky) {
			retry = ids // the last call with the flaky entry
		}
	}
	if seen[flaky] != 2 || !slices.Equal(retry, []string{flaky}) {
		t.Errorf("calls = %v, want the retry to send the flaky entry %s alone, again", calls, flaky)
	}
}

// TestStreamingUnderInboundPolicy: as in Dapr, an event a streaming
// subscriber answers with RETRY is sent to it again under the pub/sub's
// inbound policy (three attempts with maxRetries 2), then left to the
// broker.
func TestStreamingUnderInboundPolicy(t *testing.T) {
	_, reg := pubsubRegistryRedeliver(t, "1h")
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "me", Resiliency: resiliencySet(t, strings.ReplaceAll(componentPolicies, "      pubsub:", "      ps:"))})
	next := &scriptedDeliverer{verdicts: []subscriptions.Status{subscriptions.Retry}}
	stop, err := p.Subscribe(context.Background(), StreamRequest{PubsubName: "ps", Topic: "live"}, next)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := p.Publish(context.Background(), PublishRequest{PubsubName: "ps", Topic: "live", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "three attempts", func() bool {
		next.mu.Lock()
		defer next.mu.Unlock()
		return next.calls >= 3
	})
	time.Sleep(50 * time.Millisecond)
	next.mu.Lock()
	defer next.mu.Unlock()
	if next.calls != 3 {
		t.Errorf("stream got the event %d times, want 3", next.calls)
	}
}

// statusBroker is a broker whose Publish fails with the gRPC status its
// topic names ("14" → Unavailable), counting the attempts per topic.
type statusBroker struct {
	*inmemory.PubSub
	*publishCounts
}

// publishCounts counts the publish attempts per topic.
type publishCounts struct {
	mu    sync.Mutex
	calls map[string]int
}

func (b statusBroker) Publish(_ context.Context, req *pubsub.PublishRequest) error {
	b.mu.Lock()
	b.calls[req.Topic]++
	b.mu.Unlock()
	code, _ := strconv.Atoi(req.Topic)
	return status.Error(codes.Code(code), "broker says no")
}

// TestPublishRetryMatching: a broker's gRPC status is matched against
// httpStatusCodes as its HTTP equivalent for an HTTP caller, and against
// gRPCStatusCodes as it is for a gRPC caller (daprd's resiliency/publish).
func TestPublishRetryMatching(t *testing.T) {
	b := &publishCounts{calls: map[string]int{}}
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.status": func() pubsub.PubSub { return statusBroker{inmemory.New(nil), b} },
	})
	m := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "app"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{
		{Name: "httpmatch", Type: "pubsub.status", InitTimeout: components.DefaultInitTimeout},
		{Name: "grpcmatch", Type: "pubsub.status", InitTimeout: components.DefaultInitTimeout},
	})
	if err := m.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := NewPubSub(PubSubConfig{Registry: m.Registry(), AppID: "me", Resiliency: resiliencySet(t, `
  policies:
    retries:
      http: {policy: constant, duration: 1ms, maxRetries: 3, matching: {httpStatusCodes: "429,500-599"}}
      grpc: {policy: constant, duration: 1ms, maxRetries: 3, matching: {gRPCStatusCodes: "14"}}
  targets:
    components:
      httpmatch: {outbound: {retry: http}}
      grpcmatch: {outbound: {retry: grpc}}
`)})
	for _, tc := range []struct {
		pubsub string
		code   codes.Code
		http   bool
		calls  int
	}{
		{"httpmatch", codes.Unavailable, true, 4},        // 503
		{"httpmatch", codes.ResourceExhausted, true, 4},  // 429
		{"httpmatch", codes.FailedPrecondition, true, 1}, // 400
		{"grpcmatch", codes.Unavailable, false, 4},
		{"grpcmatch", codes.FailedPrecondition, false, 1},
	} {
		topic := strconv.Itoa(int(tc.code))
		b.mu.Lock()
		b.calls[topic] = 0
		b.mu.Unlock()
		err := p.Publish(context.Background(), PublishRequest{PubsubName: tc.pubsub, Topic: topic, Data: []byte(`{}`), HTTP: tc.http})
		b.mu.Lock()
		calls := b.calls[topic]
		b.mu.Unlock()
		if err == nil || calls != tc.calls {
			t.Errorf("%s %s (http %t): %d attempts, err %v; want %d and an error", tc.pubsub, tc.code, tc.http, calls, err, tc.calls)
		}
		if err != nil && strings.Contains(err.Error(), "HTTP status") {
			t.Errorf("error %q shows the matching status instead of the broker's error", err)
		}
	}
}
