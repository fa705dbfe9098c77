package workflow

import (
	"context"
	"fmt"

	"github.com/tandemrun/tandem/actors"
)

// Optimistic concurrency on an instance's state, as daprd's: the engine
// keeps the ETag of the metadata row it loaded (or last saved), and every
// save but an instance's first names it on the metadata upsert. A writer
// that changed the instance meanwhile (a peer host that took the instance
// over during a placement change, a force purge, a tool writing the
// store) makes the whole transaction fail with an ETag mismatch rather
// than be overwritten: the engine drops its copy (saveOrDrop), and the
// caller's retry (an activity's result delivery, a reminder's next
// firing) works on what the store holds.

// etagHost is a Host that tells a stored value's version
// (actors.Runtime). With a Host that does not, saves are unconditional.
type etagHost interface {
	GetStateETag(ctx context.Context, actorType, actorID, key string) ([]byte, *string, error)
}

// etagSaver is a Host whose transactions tell the versions they wrote
// (actors.Runtime): a save then needs no read of the metadata row's ETag.
type etagSaver interface {
	TransactStateETags(ctx context.Context, actorType, actorID string, ops []actors.StateOp) (map[string]string, error)
}

// getMetadata reads an instance's metadata row and its ETag (nil when the
// row is missing or the host has no ETags).
func (e *Engine) getMetadata(ctx context.Context, id string) ([]byte, *string, error) {
	if h, ok := e.cfg.Actors.(etagHost); ok {
		return h.GetStateETag(ctx, e.workflowType, id, keyMetadata)
	}
	b, err := e.cfg.Actors.GetState(ctx, e.workflowType, id, keyMetadata)
	return b, nil, err
}

// refreshETag reads the metadata row's ETag after a save: a transaction
// does not return the versions it wrote.
func (e *Engine) refreshETag(ctx context.Context, inst *instance) error {
	if _, ok := e.cfg.Actors.(etagHost); !ok {
		return nil
	}
	_, tag, err := e.getMetadata(ctx, inst.id)
	if err != nil {
		inst.metaETag = nil
		return fmt.Errorf("read workflow %s metadata version: %w", inst.id, err)
	}
	inst.metaETag = tag
	return nil
}
