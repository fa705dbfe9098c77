//go:build state_spiffeprobe

package builtin

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
)

// SpiffeProbeType is the test-only store of Dapr's integration suite
// (daprd/mtls/standalone/svidcontext), compiled in only with the
// state_spiffeprobe build tag, as daprd's: never part of a release.
const SpiffeProbeType = "state.spiffeprobe"

// spiffeProbe is the in-memory store whose Get reports, instead of a
// stored value, which of the workload's SVID sources (X.509, JWT) reached
// the operation's context: {"x509":bool,"jwt":bool}.
type spiffeProbe struct {
	*inmemory.Store
}

// Get reports the SVID sources in ctx.
func (s spiffeProbe) Get(ctx context.Context, _ *state.GetRequest) (*state.GetResponse, error) {
	_, x509 := components.X509SVIDFrom(ctx)
	_, jwt := components.JWTSVIDFrom(ctx)
	data, err := json.Marshal(map[string]bool{"x509": x509, "jwt": jwt})
	if err != nil {
		return nil, err
	}
	return &state.GetResponse{Data: data}, nil
}

// tagged are the stores of build tags: state.spiffeprobe.
func tagged(*slog.Logger) map[string]func() state.Store {
	return map[string]func() state.Store{SpiffeProbeType: func() state.Store { return spiffeProbe{inmemory.New()} }}
}
