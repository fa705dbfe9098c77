package workflow

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/actors"
)

// TestGRPCErr: the engine's errors reach the durabletask clients with
// daprd's codes; a sidecar with no actor state store answers Internal in
// the actor runtime's words, from this host or in another's text.
func TestGRPCErr(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		text string
	}{
		{"not found", fmt.Errorf("%w: x", ErrNotFound), codes.NotFound, "does not exist"},
		{"running", fmt.Errorf("%w: x", ErrExists), codes.AlreadyExists, "already exists"},
		{"tree runs", recreateErr{msg: "cannot recreate workflow with ID 'x': child workflow 'y': " + notCompleted}, codes.AlreadyExists, "child workflow 'y'"},
		{"tree not asked", recreateErr{msg: "cannot recreate workflow with ID 'x': failed to verify child workflow 'y' is in a terminal state: timeout"}, codes.Unavailable, "failed to verify"},
		{"no state store", fmt.Errorf("load workflow x metadata: %w", actors.ErrNoStateStore), codes.Internal, "the state store is not configured to use the actor runtime"},
		{"no state store, remote", errors.New("actor call: " + actors.ErrNoStateStore.Error()), codes.Internal, "the state store is not configured to use the actor runtime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := status.Convert(grpcErr(tc.err))
			if s.Code() != tc.code || !strings.Contains(s.Message(), tc.text) {
				t.Errorf("grpcErr = %v %q, want %v containing %q", s.Code(), s.Message(), tc.code, tc.text)
			}
		})
	}
}
