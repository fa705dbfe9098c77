package hashing

import (
	"fmt"
	"testing"
)

// The expected values below were computed outside Go (Python's hashlib:
// BLAKE2b-512, first 8 bytes little-endian; virtual nodes name+index;
// owner = first node >= hash, wrapping), from the definition of Dapr's
// algorithm, not from this package.
func TestHashVectors(t *testing.T) {
	for key, want := range map[string]uint64{
		"":                241225442164632184,
		"a":               1260069880423202611,
		"actor-1":         10015260465285814958,
		"10.0.0.1:500020": 7120362376346592644,
	} {
		if got := Hash(key); got != want {
			t.Errorf("Hash(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestOwnerVectors(t *testing.T) {
	r := New([]Host{
		{Name: "10.0.0.1:50002", AppID: "a"}, {Name: "10.0.0.2:50002", AppID: "b"}, {Name: "10.0.0.3:50002", AppID: "c"},
	}, 100)
	for key, want := range map[string]string{
		"actor-1": "10.0.0.1:50002", "actor-2": "10.0.0.3:50002", "1": "10.0.0.3:50002", "2": "10.0.0.3:50002",
		"3": "10.0.0.2:50002", "myactor": "10.0.0.1:50002", "order-42": "10.0.0.1:50002", "x": "10.0.0.1:50002",
	} {
		h, ok := r.Owner(key)
		if !ok || h.Name != want {
			t.Errorf("Owner(%q) = %q, want %q", key, h.Name, want)
		}
	}
}

func TestEmptyAndEqual(t *testing.T) {
	if _, ok := New(nil, 100).Owner("x"); ok {
		t.Fatal("empty ring has an owner")
	}
	var nilRing *Ring
	if _, ok := nilRing.Owner("x"); ok {
		t.Fatal("nil ring has an owner")
	}
	a := New([]Host{{Name: "h1:1", AppID: "x"}, {Name: "h2:1", AppID: "y"}}, 10)
	b := New([]Host{{Name: "h2:1", AppID: "y"}, {Name: "h1:1", AppID: "x"}}, 10)
	if !a.Equal(b) {
		t.Fatal("same hosts in another order are not equal")
	}
	if a.Equal(New([]Host{{Name: "h1:1", AppID: "x"}}, 10)) || a.Equal(New([]Host{{Name: "h1:1", AppID: "x"}, {Name: "h2:1", AppID: "z"}}, 10)) {
		t.Fatal("different rings are equal")
	}
	if !nilRing.Equal(New(nil, 3)) {
		t.Fatal("nil and empty rings differ")
	}
	if got := len(a.Hosts()); got != 2 || a.Hosts()[0].Name != "h1:1" {
		t.Fatalf("hosts %v", a.Hosts())
	}
}

// TestRemovalMovesOnlyOwnKeys is consistent hashing's promise: removing a
// host moves only the keys it owned.
func TestRemovalMovesOnlyOwnKeys(t *testing.T) {
	hosts := []Host{{Name: "h1:1"}, {Name: "h2:1"}, {Name: "h3:1"}}
	full, less := New(hosts, 100), New(hosts[:2], 100)
	for i := range 2000 {
		k := fmt.Sprint("id-", i)
		before, _ := full.Owner(k)
		after, _ := less.Owner(k)
		if before.Name != "h3:1" && before != after {
			t.Fatalf("%s moved from %s to %s", k, before.Name, after.Name)
		}
	}
}

func FuzzOwner(f *testing.F) {
	f.Add("actor-1", int64(3))
	f.Fuzz(func(t *testing.T, key string, rf int64) {
		rf = rf%50 + 1
		if rf < 1 {
			rf = 1
		}
		r := New([]Host{{Name: "a:1"}, {Name: "b:2"}}, rf)
		h, ok := r.Owner(key)
		if !ok || (h.Name != "a:1" && h.Name != "b:2") {
			t.Fatalf("owner %v %v", h, ok)
		}
	})
}
