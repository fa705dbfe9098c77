package api

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

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
