package pubsub

import (
	"context"
	"errors"
	"fmt"
)

// BulkPublisher is implemented by brokers that publish many messages in one
// round trip. Callers use BulkPublish, which falls back to Publish.
type BulkPublisher interface {
	BulkPublish(ctx context.Context, req *BulkPublishRequest) (BulkPublishResponse, error)
}

// BulkPublishRequest is a batch of messages for one topic.
type BulkPublishRequest struct {
	Topic   string
	Entries []BulkMessageEntry
	// Metadata applies to every entry; an entry's own Metadata wins.
	Metadata map[string]string
}

// BulkMessageEntry is one message of a batch.
type BulkMessageEntry struct {
	// EntryID identifies the entry in the response (Dapr's entryId).
	EntryID     string
	Event       []byte
	ContentType string
	Metadata    map[string]string
}

// BulkPublishResponse lists the entries that were not published; empty means
// all were.
type BulkPublishResponse struct {
	FailedEntries []BulkPublishFailure
}

// BulkPublishFailure is one entry that was not published.
type BulkPublishFailure struct {
	EntryID string
	Error   error
}

// ErrBulkPartial is returned (wrapped) by BulkPublish when some entries
// failed; the response names them.
var ErrBulkPartial = errors.New("some entries were not published")

// BulkPublish publishes req through ps's BulkPublisher when it has one, and
// otherwise entry by entry with Publish. Entries that fail are listed in the
// response and the error wraps ErrBulkPartial.
func BulkPublish(ctx context.Context, ps PubSub, req *BulkPublishRequest) (BulkPublishResponse, error) {
	if bp, ok := ps.(BulkPublisher); ok {
		return bp.BulkPublish(ctx, req)
	}
	var resp BulkPublishResponse
	for _, e := range req.Entries {
		err := ps.Publish(ctx, &PublishRequest{
			Topic:       req.Topic,
			Data:        e.Event,
			ContentType: e.ContentType,
			Metadata:    MergeMetadata(req.Metadata, e.Metadata),
		})
		if err != nil {
			resp.FailedEntries = append(resp.FailedEntries, BulkPublishFailure{EntryID: e.EntryID, Error: err})
		}
	}
	if n := len(resp.FailedEntries); n > 0 {
		return resp, fmt.Errorf("bulk publish to %q: %d of %d: %w", req.Topic, n, len(req.Entries), ErrBulkPartial)
	}
	return resp, nil
}

// MergeMetadata returns base overlaid with over, as a new map (nil when both
// are empty).
func MergeMetadata(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	m := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}
