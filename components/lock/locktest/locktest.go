// Package locktest is the contract suite every lock store passes against
// its real server:
//
//	func TestContract(t *testing.T) {
//		locktest.RequireServer(t, "127.0.0.1:6379", "Redis")
//		locktest.Run(t, func(t *testing.T) lock.Store { ... Init ... })
//	}
//
// newStore must return an initialised store; the suite closes it (Close
// must be idempotent) and uses fresh random keys.
package locktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/lock"
)

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
func Run(t *testing.T, newStore func(t *testing.T) lock.Store) {
	open := func(t *testing.T) lock.Store {
		s := newStore(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	ctx := context.Background()
	t.Run("LockUnlock", func(t *testing.T) {
		s := open(t)
		key := "lock||test||" + RandomSuffix()
		if ok, err := s.TryLock(ctx, key, "a", 10); err != nil || !ok {
			t.Fatalf("first TryLock = %v, %v", ok, err)
		}
		if ok, err := s.TryLock(ctx, key, "b", 10); err != nil || ok {
			t.Fatalf("TryLock while held = %v, %v", ok, err)
		}
		if st, err := s.Unlock(ctx, key, "b"); err != nil || st != lock.LockBelongsToOther {
			t.Fatalf("Unlock by another owner = %v, %v", st, err)
		}
		if st, err := s.Unlock(ctx, key, "a"); err != nil || st != lock.Success {
			t.Fatalf("Unlock by the owner = %v, %v", st, err)
		}
		if st, err := s.Unlock(ctx, key, "a"); err != nil || st != lock.LockDoesNotExist {
			t.Fatalf("Unlock of a free lock = %v, %v", st, err)
		}
		if ok, err := s.TryLock(ctx, key, "b", 10); err != nil || !ok {
			t.Fatalf("TryLock after release = %v, %v", ok, err)
		}
	})
	t.Run("Expires", func(t *testing.T) {
		s := open(t)
		key := "lock||test||" + RandomSuffix()
		if ok, err := s.TryLock(ctx, key, "a", 1); err != nil || !ok {
			t.Fatalf("TryLock = %v, %v", ok, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok, err := s.TryLock(ctx, key, "b", 10)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the lock did not expire")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("OneWinner", func(t *testing.T) {
		s := open(t)
		key := "lock||test||" + RandomSuffix()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if ok, err := s.TryLock(ctx, key, "owner-"+string(rune('a'+i)), 10); err == nil && ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d owners took the lock", n)
		}
	})
	t.Run("CloseIsIdempotent", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
