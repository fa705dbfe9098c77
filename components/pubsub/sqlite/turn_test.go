package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

func openTestTurn(t *testing.T, dbPath string) *turn {
	t.Helper()
	tn, err := openTurn(dbPath)
	if err != nil {
		t.Skipf("no write turn on this platform: %v", err)
	}
	t.Cleanup(tn.close)
	return tn
}

// TestTurnExcludes: while one instance holds the turn another waits, up to
// its limit, and gets it when it is released.
func TestTurnExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	a, b := openTestTurn(t, path), openTestTurn(t, path)
	if !a.lock(t.Context(), time.Second) {
		t.Fatal("a free turn was not taken")
	}
	start := time.Now()
	if b.lock(t.Context(), 50*time.Millisecond) {
		t.Fatal("two instances hold the turn at once")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %s, want the 50ms limit", waited)
	}
	got := make(chan bool, 1)
	go func() { got <- b.lock(context.Background(), 10*time.Second) }()
	time.Sleep(20 * time.Millisecond)
	a.unlock()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiter did not get the released turn")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not get the released turn within 5s")
	}
	b.unlock()

	var nilTurn *turn // no lock files: SQLite's lock alone
	if nilTurn.lock(t.Context(), time.Second) {
		t.Error("a nil turn reports being held")
	}
	nilTurn.unlock()
	nilTurn.close()
	if _, err := openTurn(filepath.Join(t.TempDir(), "missing", "p.db")); err == nil {
		t.Error("openTurn in a missing folder succeeded")
	}
}

// TestTurnHolderLetsWaiterGo: an instance that takes the turn again right
// after each release (a writer that always has work) lets a waiting one go
// within about turnQuantum instead of keeping it.
func TestTurnHolderLetsWaiterGo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	busy, waiter := openTestTurn(t, path), openTestTurn(t, path)
	stop := make(chan struct{})
	var rounds atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if busy.lock(context.Background(), 10*time.Second) {
				time.Sleep(200 * time.Microsecond) // a short transaction
				busy.unlock()
			}
			rounds.Add(1)
		}
	})
	defer func() { close(stop); wg.Wait() }()
	for i := range 5 {
		// Let the busy instance have it again for a while.
		for r := rounds.Load() + 10; rounds.Load() < r; {
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		if !waiter.lock(t.Context(), 5*time.Second) {
			t.Fatalf("round %d: the waiter did not get the turn in 5s while another instance kept taking it", i)
		}
		waited := time.Since(start)
		waiter.unlock()
		t.Logf("round %d: waited %s", i, waited.Round(time.Microsecond))
		if waited > time.Second {
			t.Errorf("round %d: waited %s for the turn, want about %s", i, waited, turnQuantum)
		}
	}
}

// newTestInstance is an initialised broker on file, as one sidecar.
func newTestInstance(t *testing.T, file, appID string, props map[string]string) *PubSub {
	t.Helper()
	p := map[string]string{"connectionString": file}
	for k, v := range props {
		p[k] = v
	}
	ps := New(nil)
	if err := ps.Init(context.Background(), components.Metadata{Name: "sq", Type: Type, AppID: appID, Properties: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

// TestBusyWriterDoesNotStarveGroup: one instance of a consumer group has a
// write transaction queued whenever one ends (here: transactions that take
// 2ms each, as publishes and acks take under load), and the group's other
// instance must still get its share of the messages. With SQLite's lock
// alone the other instance sleeps in the busy handler and finds the lock
// free only by chance, between two of the first's transactions: it got
// almost nothing, and the first handled the topic alone. The handler is
// slow enough that one instance cannot take everything in time.
func TestBusyWriterDoesNotStarveGroup(t *testing.T) {
	const (
		messages = 40
		handle   = 10 * time.Millisecond
		least    = messages / 5 // fair is half
	)
	file := filepath.Join(t.TempDir(), "pubsub.db")
	props := map[string]string{"concurrency": "1", "pollInterval": "10ms", "processingTimeout": "10s"}
	busy, other := newTestInstance(t, file, "workers", props), newTestInstance(t, file, "workers", props)
	for i := range messages {
		if err := busy.Publish(t.Context(), &pubsub.PublishRequest{Topic: "t", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = busy.write(ctx, func(context.Context, *sql.Tx) error {
					time.Sleep(2 * time.Millisecond)
					return nil
				})
			}
		})
	}

	var (
		mu    sync.Mutex
		got   = map[*PubSub]int{}
		done  = make(chan struct{})
		total int
	)
	for _, ps := range []*PubSub{busy, other} {
		err := ps.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "t"}, func(context.Context, *pubsub.Message) error {
			time.Sleep(handle)
			mu.Lock()
			defer mu.Unlock()
			got[ps]++
			if total++; total == messages {
				close(done)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	nb, no := got[busy], got[other]
	mu.Unlock()
	waitBusy, waitOther := time.Duration(busy.stats.maxWait.Load()), time.Duration(other.stats.maxWait.Load())
	t.Logf("in %s: the busy instance handled %d, the other %d; longest lock waits %s and %s",
		time.Since(start).Round(time.Millisecond), nb, no, waitBusy.Round(time.Millisecond), waitOther.Round(time.Millisecond))
	if nb+no < messages {
		t.Fatalf("only %d of %d messages handled in 30s", nb+no, messages)
	}
	if nb < least || no < least {
		t.Errorf("the busy instance handled %d of %d messages, the other %d; want at least %d each", nb, messages, no, least)
	}
	if waitOther > 2*time.Second {
		t.Errorf("the other instance waited %s for the write lock", waitOther)
	}
}
