// Package secretstoretest is the contract suite every secret store backend
// passes: call Run from the backend's tests with a function that builds a
// store serving given secrets.
package secretstoretest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
)

// NewFunc returns an uninitialised store, and the metadata that makes it
// serve (at least) the given single-valued secrets: name -> value, readable
// as GetSecret(name) == {name: value}. It may register cleanups on t.
type NewFunc func(t *testing.T, secrets map[string]string) (secretstores.SecretStore, components.Metadata)

// Seed is the data the suite stores: names valid as environment
// variables, values with characters that must survive unchanged.
var seed = map[string]string{
	"TANDEM_ALPHA":     "p@ss:w0rd/ü \"quoted\" {braces}",
	"TANDEM_BETA_2":    "second",
	"tandem_lower":     "lower-case name",
	"TANDEM_EMPTY":     "",
	"TANDEM_MULTILINE": "line1\nline2",
}

const missing = "TANDEM_NO_SUCH_SECRET_4711"

// Run runs the contract suite.
func Run(t *testing.T, newStore NewFunc) {
	t.Helper()
	open := func(t *testing.T) secretstores.SecretStore {
		t.Helper()
		s, md := newStore(t, seed)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Init(ctx, md); err != nil {
			t.Fatalf("Init: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}

	t.Run("GetSecret returns each secret as {name: value}", func(t *testing.T) {
		s := open(t)
		for name, want := range seed {
			got, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: name})
			if err != nil {
				t.Fatalf("GetSecret(%q): %v", name, err)
			}
			if len(got) != 1 || got[name] != want {
				t.Errorf("GetSecret(%q) = %q, want {%q: %q}", name, got, name, want)
			}
		}
	})

	t.Run("missing secret is ErrNotFound without values in the message", func(t *testing.T) {
		s := open(t)
		_, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: missing})
		if !errors.Is(err, secretstores.ErrNotFound) {
			t.Fatalf("GetSecret(missing) error = %v, want ErrNotFound", err)
		}
		for _, v := range seed {
			if len(v) > 3 && strings.Contains(err.Error(), v) {
				t.Errorf("error %q contains a secret value", err)
			}
		}
	})

	t.Run("BulkGetSecret includes every secret", func(t *testing.T) {
		s := open(t)
		all, err := s.BulkGetSecret(context.Background(), secretstores.BulkGetRequest{})
		if err != nil {
			t.Fatalf("BulkGetSecret: %v", err)
		}
		for name, want := range seed {
			got, ok := all[name]
			if !ok || got[name] != want {
				t.Errorf("BulkGetSecret()[%q] = %q, want {%q: %q}", name, got, name, want)
			}
		}
		if _, ok := all[missing]; ok {
			t.Errorf("BulkGetSecret() has %q", missing)
		}
	})

	t.Run("returned maps are the caller's", func(t *testing.T) {
		s := open(t)
		got, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: "TANDEM_BETA_2"})
		if err != nil {
			t.Fatal(err)
		}
		got["TANDEM_BETA_2"] = "changed"
		again, _ := s.GetSecret(context.Background(), secretstores.GetRequest{Name: "TANDEM_BETA_2"})
		if again["TANDEM_BETA_2"] != "second" {
			t.Errorf("changing a returned map changed the store: %q", again)
		}
	})

	t.Run("features are listed", func(t *testing.T) {
		s := open(t)
		for _, f := range s.Features() {
			if f == "" || strings.ToUpper(string(f)) != string(f) {
				t.Errorf("feature %q is not an upper-case Dapr name", f)
			}
		}
	})

	t.Run("concurrent reads", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					if _, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: "TANDEM_ALPHA"}); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.BulkGetSecret(context.Background(), secretstores.BulkGetRequest{}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}
