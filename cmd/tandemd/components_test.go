package main

import (
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components/state/postgresql"
)

// TestStatePostgresqlByVersion: state.postgresql is built by spec.version,
// since Dapr's v1 and v2 keep different tables.
func TestStatePostgresqlByVersion(t *testing.T) {
	k := stateKind(nil)
	vs, ok := k.Versioned[postgresql.Type]
	if !ok {
		t.Fatalf("%s is not built by version", postgresql.Type)
	}
	for version, v2 := range map[string]bool{"": false, "v1": false, "v2": true} {
		s, err := vs.Build(postgresql.Type, version)
		if err != nil {
			t.Fatalf("version %q: %v", version, err)
		}
		if _, isV2 := s.(*postgresql.StoreV2); isV2 != v2 {
			t.Errorf("version %q built %T", version, s)
		}
	}
	if _, err := vs.Build(postgresql.Type, "v3"); err == nil || !strings.Contains(err.Error(), "v1, v2") {
		t.Errorf("version v3: %v", err)
	}
}
