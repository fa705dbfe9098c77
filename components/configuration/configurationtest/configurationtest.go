// Package configurationtest is the contract suite every configuration
// store passes against its real server:
//
//	func TestContract(t *testing.T) {
//		configurationtest.RequireServer(t, "127.0.0.1:6379", "Redis")
//		configurationtest.Run(t, newStore, func(t *testing.T, key, value, version string) { ... write it ... })
//	}
//
// newStore returns an initialised store (the suite closes it); set writes
// an item straight to the server (an empty value deletes it). Keys are
// fresh and random in every test.
package configurationtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/configuration"
)

// Timeout bounds every wait for a change.
const Timeout = 15 * time.Second

// RandomSuffix returns 8 random hex characters for unique names.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RequireServer checks that a TCP server listens on addr; it skips the
// test with a message when not, or fails it when CI=true.
func RequireServer(t testing.TB, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := what + " is not reachable at " + addr + " (" + err.Error() + "); start it (bash scripts/services.sh) to run these tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Run runs the contract suite.
func Run(t *testing.T, newStore func(t *testing.T) configuration.Store, set func(t *testing.T, key, value, version string)) {
	open := func(t *testing.T) configuration.Store {
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	ctx := context.Background()
	t.Run("Get", func(t *testing.T) {
		s := open(t)
		a, b := "cfgtest_a_"+RandomSuffix(), "cfgtest_b_"+RandomSuffix()
		set(t, a, "1", "v1")
		set(t, b, "2", "")
		items, err := s.Get(ctx, []string{a, b, "cfgtest_missing_" + RandomSuffix()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 2 || items[a].Value != "1" || items[a].Version != "v1" || items[b].Value != "2" {
			t.Fatalf("Get = %v", items)
		}
		all, err := s.Get(ctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if all[a] == nil || all[b] == nil {
			t.Fatalf("Get with no keys misses %s or %s", a, b)
		}
	})
	t.Run("SubscribeSeesChangesUntilCancelled", func(t *testing.T) {
		s := open(t)
		key := "cfgtest_sub_" + RandomSuffix()
		got := make(chan map[string]*configuration.Item, 16)
		sctx, cancel := context.WithCancel(ctx)
		if err := s.Subscribe(sctx, []string{key}, nil, func(_ context.Context, items map[string]*configuration.Item) error {
			got <- items
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		set(t, key, "hello", "7")
		select {
		case items := <-got:
			if it := items[key]; it == nil || it.Value != "hello" || it.Version != "7" {
				t.Fatalf("change = %v", items)
			}
		case <-time.After(Timeout):
			t.Fatal("no change seen")
		}
		set(t, key, "", "")
		select {
		case items := <-got:
			// Stores differ in what a deletion carries (Redis: an empty
			// item; PostgreSQL: the deleted row); it must name the key.
			if _, ok := items[key]; !ok {
				t.Fatalf("deletion = %v", items)
			}
		case <-time.After(Timeout):
			t.Fatal("deletion not seen")
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
		for len(got) > 0 {
			<-got
		}
		set(t, key, "after", "")
		select {
		case items := <-got:
			t.Fatalf("change after the subscription ended: %v", items)
		case <-time.After(500 * time.Millisecond):
		}
	})
}
