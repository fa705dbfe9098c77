package jwtsvid

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestReloader(t *testing.T) {
	p := PathsIn(t.TempDir(), "", "")
	old, _, err := LoadOrGenerate(p, "")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Bundle, 4)
	r := &Reloader{Paths: p, Interval: 10 * time.Millisecond, OnReload: func(b *Bundle) error { got <- b; return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(30 * time.Millisecond)
	quiet := func(what string) {
		t.Helper()
		select {
		case <-got:
			t.Fatalf("%s: unexpected reload", what)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Step 1: the new public key joins the set; the old key keeps signing.
	next := mustGenerate(t)
	both := jose.JSONWebKeySet{Keys: append(append([]jose.JSONWebKey{}, old.JWKS.Keys...), next.JWKS.Keys...)}
	js, _ := json.Marshal(both)
	if err := os.WriteFile(p.JWKS, js, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b.KeyPEM) != string(old.KeyPEM) || len(b.JWKS.Keys) != 2 {
			t.Fatal("step 1: wrong bundle")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("step 1: no reload")
	}
	// Step 2: the new key signs.
	if err := os.WriteFile(p.Key, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b.KeyPEM) != string(next.KeyPEM) {
			t.Fatal("step 2: wrong key")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("step 2: no reload")
	}
	// A key its set does not hold is never applied.
	if err := os.WriteFile(p.Key, mustGenerate(t).KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	quiet("a key missing from the set")
}
