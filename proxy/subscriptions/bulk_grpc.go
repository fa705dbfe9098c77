package subscriptions

import (
	"context"
	"fmt"
	"strings"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// bulkRequest converts b for gRPC subscribers: cloud events as
// TopicEventCERequest entries, raw payloads as bytes.
func (b *BulkMessage) bulkRequest() (*runtimev1.TopicEventBulkRequest, error) {
	req := &runtimev1.TopicEventBulkRequest{
		Id: newEntryID(), Metadata: b.Metadata, Topic: b.Topic, PubsubName: b.PubsubName,
		Type: BulkEventType, Path: b.Path, Entries: make([]*runtimev1.TopicEventBulkRequestEntry, len(b.Entries)),
	}
	for i, e := range b.Entries {
		entry := &runtimev1.TopicEventBulkRequestEntry{EntryId: e.EntryID, ContentType: e.ContentType, Metadata: e.Message.Metadata}
		if e.Raw != nil {
			entry.Event = &runtimev1.TopicEventBulkRequestEntry_Bytes{Bytes: e.Raw}
			if entry.ContentType == "" {
				entry.ContentType = contentTypeOctetStream
			}
		} else {
			ter, err := TopicEventRequest(e.Message)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", e.EntryID, err)
			}
			entry.Event = &runtimev1.TopicEventBulkRequestEntry_CloudEvent{CloudEvent: &runtimev1.TopicEventCERequest{
				Id: ter.GetId(), Source: ter.GetSource(), Type: ter.GetType(), SpecVersion: ter.GetSpecVersion(),
				DataContentType: ter.GetDataContentType(), Data: ter.GetData(), Extensions: ter.GetExtensions(),
			}}
			if entry.ContentType == "" || cloudevents.IsBinary(entry.ContentType) {
				entry.ContentType = cloudevents.ContentType
			}
		}
		req.Entries[i] = entry
	}
	return req, nil
}

// DeliverBulk implements BulkDeliverer for gRPC apps: AppCallback
// OnBulkTopicEvent, falling back to AppCallbackAlpha OnBulkTopicEventAlpha1
// (older SDKs) when the app does not implement it and d.Alpha is set.
// Per-entry statuses follow the single-event rules (missing entry:
// retry); both methods unimplemented discards the batch, another error
// retries all entries.
func (d GRPCDeliverer) DeliverBulk(ctx context.Context, b *BulkMessage) ([]Status, error) {
	n := len(b.Entries)
	req, err := b.bulkRequest()
	if err != nil {
		return fill(n, Retry), err
	}
	md := metadata.MD{}
	for k, v := range b.Metadata {
		if validHeader(k, v) && !strings.HasPrefix(strings.ToLower(k), "grpc-") {
			md.Append(strings.ToLower(k), v)
		}
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	res, err := d.App.OnBulkTopicEvent(ctx, req)
	if status.Code(err) == codes.Unimplemented && d.Alpha != nil {
		//lint:ignore SA1019 apps built with older SDKs only implement the alpha callback
		res, err = d.Alpha.OnBulkTopicEventAlpha1(ctx, req)
	}
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return fill(n, Discard), fmt.Errorf("app does not implement OnBulkTopicEvent for topic %s: %w", b.Topic, err)
		}
		return fill(n, Retry), fmt.Errorf("app failed a batch of %d events: %w", n, err)
	}
	got := make(map[string]runtimev1.TopicEventResponse_TopicEventResponseStatus, len(res.GetStatuses()))
	for _, s := range res.GetStatuses() {
		got[s.GetEntryId()] = s.GetStatus()
	}
	return b.statuses(func(id string) (string, bool) {
		s, ok := got[id]
		if !ok {
			return "", false
		}
		return s.String(), true
	})
}
