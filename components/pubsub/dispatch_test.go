package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
)

// settled records how each delivery ended.
type settled struct {
	mu     sync.Mutex
	acks   []string
	nacks  []string
	causes []error
	done   int
}

func (s *settled) delivery(id string, md map[string]string) pubsub.Delivery {
	return pubsub.Delivery{
		Msg: &pubsub.Message{Topic: "t", ID: id, Data: []byte(id), Metadata: md},
		Ack: func(context.Context) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.acks = append(s.acks, id)
			return nil
		},
		Nack: func(_ context.Context, cause error) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.nacks = append(s.nacks, id)
			s.causes = append(s.causes, cause)
			return nil
		},
		Done: func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.done++
		},
	}
}

func TestDispatcherSettles(t *testing.T) {
	tests := []struct {
		name      string
		handler   pubsub.Handler
		retries   int
		wantAcks  int
		wantNacks int
		wantCalls int32
	}{
		{"success acks", func(context.Context, *pubsub.Message) error { return nil }, 0, 1, 0, 1},
		{"error nacks", func(context.Context, *pubsub.Message) error { return errors.New("boom") }, 0, 0, 1, 1},
		{"panic nacks", func(context.Context, *pubsub.Message) error { panic("bad message") }, 0, 0, 1, 1},
		{"retries in place then nacks", func(context.Context, *pubsub.Message) error { return errors.New("boom") }, 2, 0, 1, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls atomic.Int32
				h := func(ctx context.Context, m *pubsub.Message) error {
					calls.Add(1)
					return tt.handler(ctx, m)
				}
				var s settled
				d := pubsub.NewDispatcher(t.Context(), h, pubsub.DispatcherConfig{Concurrency: 1, Retries: tt.retries})
				if err := d.Dispatch(s.delivery("m1", nil)); err != nil {
					t.Fatal(err)
				}
				d.Wait()
				if len(s.acks) != tt.wantAcks || len(s.nacks) != tt.wantNacks || s.done != 1 {
					t.Errorf("acks=%v nacks=%v done=%d, want %d acks %d nacks 1 done", s.acks, s.nacks, s.done, tt.wantAcks, tt.wantNacks)
				}
				if calls.Load() != tt.wantCalls {
					t.Errorf("handler called %d times, want %d", calls.Load(), tt.wantCalls)
				}
			})
		})
	}
}

func TestDispatcherRetriesUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		h := func(context.Context, *pubsub.Message) error {
			if calls.Add(1) < 10 {
				return errors.New("not yet")
			}
			return nil
		}
		var s settled
		d := pubsub.NewDispatcher(t.Context(), h, pubsub.DispatcherConfig{Concurrency: 1, Retries: -1})
		_ = d.Dispatch(s.delivery("m1", nil))
		d.Wait()
		if len(s.acks) != 1 || len(s.nacks) != 0 || calls.Load() != 10 {
			t.Errorf("acks=%v nacks=%v calls=%d, want 1 ack after 10 calls", s.acks, s.nacks, calls.Load())
		}
	})
}

func TestDispatcherMaxConcurrencyBlocksDispatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var running, peak atomic.Int32
		h := func(context.Context, *pubsub.Message) error {
			v := running.Add(1)
			if v > peak.Load() {
				peak.Store(v)
			}
			<-release
			running.Add(-1)
			return nil
		}
		var s settled
		d := pubsub.NewDispatcher(t.Context(), h, pubsub.DispatcherConfig{Concurrency: 2})
		_ = d.Dispatch(s.delivery("a", nil))
		_ = d.Dispatch(s.delivery("b", nil))
		third := make(chan error, 1)
		go func() { third <- d.Dispatch(s.delivery("c", nil)) }()
		synctest.Wait()
		select {
		case <-third:
			t.Fatal("third Dispatch returned while 2 of 2 handlers were busy; it must block")
		default:
		}
		close(release)
		if err := <-third; err != nil {
			t.Fatal(err)
		}
		d.Wait()
		if peak.Load() != 2 || len(s.acks) != 3 {
			t.Errorf("peak=%d acks=%v, want peak 2 and 3 acks", peak.Load(), s.acks)
		}
	})
}

func TestDispatcherOrdersPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		order := map[string][]string{}
		busy := map[string]bool{}
		var overlapSameKey, overlapAcrossKeys atomic.Bool
		var running atomic.Int32
		fails := map[string]int{"k1-1": 2} // fails twice, then succeeds in place
		h := func(_ context.Context, m *pubsub.Message) error {
			key := m.Metadata["pk"]
			mu.Lock()
			if busy[key] {
				overlapSameKey.Store(true)
			}
			busy[key] = true
			mu.Unlock()
			if running.Add(1) > 1 {
				overlapAcrossKeys.Store(true)
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			mu.Lock()
			defer mu.Unlock()
			busy[key] = false
			if fails[m.ID] > 0 {
				fails[m.ID]--
				return errors.New("retry me")
			}
			order[key] = append(order[key], m.ID)
			return nil
		}
		var s settled
		d := pubsub.NewDispatcher(t.Context(), h, pubsub.DispatcherConfig{Concurrency: 8, OrderingKey: "pk"})
		for i := range 4 {
			for _, k := range []string{"k1", "k2"} {
				_ = d.Dispatch(s.delivery(fmt.Sprintf("%s-%d", k, i), map[string]string{"pk": k}))
			}
		}
		d.Wait()
		for _, k := range []string{"k1", "k2"} {
			want := fmt.Sprintf("[%s-0 %s-1 %s-2 %s-3]", k, k, k, k)
			if got := fmt.Sprint(order[k]); got != want {
				t.Errorf("key %s handled in order %s, want %s", k, got, want)
			}
		}
		if overlapSameKey.Load() {
			t.Error("two handlers ran at once for one key")
		}
		if !overlapAcrossKeys.Load() {
			t.Error("different keys never ran in parallel")
		}
		if len(s.nacks) != 0 {
			t.Errorf("nacks = %v; a failing ordered message must be retried in place first", s.nacks)
		}
	})
}

func TestDispatcherStopNacksUnstarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		entered := make(chan struct{})
		release := make(chan struct{})
		var calls []string
		var mu sync.Mutex
		h := func(_ context.Context, m *pubsub.Message) error {
			mu.Lock()
			calls = append(calls, m.ID)
			mu.Unlock()
			if m.ID == "first" {
				close(entered)
				<-release
			}
			return nil
		}
		var s settled
		d := pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{Concurrency: 4, OrderingKey: "pk"})
		same := map[string]string{"pk": "k"}
		_ = d.Dispatch(s.delivery("first", same))
		<-entered
		_ = d.Dispatch(s.delivery("queued", same)) // waits behind "first"
		cancel()
		if err := d.Dispatch(s.delivery("late", same)); err == nil {
			t.Error("Dispatch after stop succeeded; want the context's error")
		}
		close(release)
		d.Wait()
		if fmt.Sprint(calls) != "[first]" {
			t.Errorf("handler calls = %v, want only the in-flight one", calls)
		}
		if fmt.Sprint(s.acks) != "[first]" || fmt.Sprint(s.nacks) != "[queued]" {
			t.Errorf("acks=%v nacks=%v, want the in-flight one acked and the queued one given back", s.acks, s.nacks)
		}
	})
}

func TestConcurrency(t *testing.T) {
	tests := []struct {
		req  int
		def  int
		want int
	}{{0, 0, pubsub.DefaultConcurrency}, {0, 4, 4}, {3, 4, 3}}
	for _, tt := range tests {
		if got := pubsub.Concurrency(pubsub.SubscribeRequest{MaxConcurrency: tt.req}, tt.def); got != tt.want {
			t.Errorf("Concurrency(%d, %d) = %d, want %d", tt.req, tt.def, got, tt.want)
		}
	}
}

// TestDispatcherRanPastStop: RanPastStop tells whether a handler was still
// running when the subscription stopped.
func TestDispatcherRanPastStop(t *testing.T) {
	for _, running := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		release := make(chan struct{})
		entered := make(chan struct{})
		d := pubsub.NewDispatcher(ctx, func(context.Context, *pubsub.Message) error {
			close(entered)
			<-release
			return nil
		}, pubsub.DispatcherConfig{})
		if err := d.Dispatch(pubsub.Delivery{Msg: &pubsub.Message{ID: "1"}}); err != nil {
			t.Fatal(err)
		}
		<-entered
		if running {
			cancel()
			close(release)
		} else {
			close(release)
			d.Wait()
			cancel()
		}
		d.Wait()
		if got := d.RanPastStop(); got != running {
			t.Errorf("handler running at stop = %v: RanPastStop = %v", running, got)
		}
	}
}
