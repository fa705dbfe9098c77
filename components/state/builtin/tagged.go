//go:build !state_spiffeprobe

package builtin

import (
	"log/slog"

	"github.com/tandemrun/tandem/components/state"
)

// tagged are the stores of build tags: none in this build (see
// spiffeprobe.go).
func tagged(*slog.Logger) map[string]func() state.Store { return nil }
