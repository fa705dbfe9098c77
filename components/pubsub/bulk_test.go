package pubsub_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// failing publishes everything except entries with data "bad".
type failing struct{ got []*pubsub.PublishRequest }

func (f *failing) Init(context.Context, components.Metadata) error { return nil }
func (f *failing) Features() []pubsub.Feature                      { return nil }
func (f *failing) Close() error                                    { return nil }
func (f *failing) Subscribe(context.Context, pubsub.SubscribeRequest, pubsub.Handler) error {
	return nil
}

func (f *failing) Publish(_ context.Context, req *pubsub.PublishRequest) error {
	if string(req.Data) == "bad" {
		return errors.New("rejected")
	}
	f.got = append(f.got, req)
	return nil
}

func TestBulkPublishFallback(t *testing.T) {
	f := &failing{}
	resp, err := pubsub.BulkPublish(t.Context(), f, &pubsub.BulkPublishRequest{
		Topic:    "orders",
		Metadata: map[string]string{"a": "1", "b": "1"},
		Entries: []pubsub.BulkMessageEntry{
			{EntryID: "1", Event: []byte("ok"), Metadata: map[string]string{"b": "2"}},
			{EntryID: "2", Event: []byte("bad")},
		},
	})
	if !errors.Is(err, pubsub.ErrBulkPartial) {
		t.Fatalf("err = %v, want ErrBulkPartial", err)
	}
	if len(resp.FailedEntries) != 1 || resp.FailedEntries[0].EntryID != "2" {
		t.Errorf("FailedEntries = %+v, want entry 2", resp.FailedEntries)
	}
	if len(f.got) != 1 || f.got[0].Metadata["a"] != "1" || f.got[0].Metadata["b"] != "2" || f.got[0].Topic != "orders" {
		t.Errorf("published %+v, want entry 1 with merged metadata a=1 b=2", f.got)
	}
}
