package workflow

import (
	"context"
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/actors"
)

// retentionerActor is daprd's third workflow actor type
// (dapr.internal.{namespace}.{appID}.retentioner, one actor per instance):
// a reminder on it purges the instance it is named after. daprd hosts it
// beside the workflow and activity types, so a sidecar with workflow
// workers reports the same actor types as daprd's in its metadata.
type retentionerActor struct{ e *Engine }

var _ actors.Internal = retentionerActor{}

func (retentionerActor) Deactivate(string) {}

// Invoke purges the instance once its retention reminder fires; an
// instance that is gone or still running is left alone.
func (r retentionerActor) Invoke(ctx context.Context, id, method string, _ []byte) ([]byte, error) {
	if !strings.HasPrefix(method, reminderPrefix) {
		return nil, fmt.Errorf("unknown workflow retentioner method %q", method)
	}
	if _, err := r.e.Purge(ctx, id, false); err != nil {
		r.e.log.Debug("workflow retention purge", "instance", id, "error", err)
	}
	return nil, nil
}
