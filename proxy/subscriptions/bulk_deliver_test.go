package subscriptions

import (
	"context"
	"slices"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/proxy/cloudevents"
)

func twoEntries() *BulkMessage {
	m := &Message{Event: cloudevents.Event{"id": "e", "specversion": "1.0", "source": "s", "type": "t", "data": "x"}, Path: "/bulk"}
	return &BulkMessage{Topic: "orders", PubsubName: "ps", Path: "/bulk", Metadata: map[string]string{MetadataKeyPubSub: "ps"},
		Entries: []BulkEntry{{EntryID: "a", Message: m}, {EntryID: "b", Message: m, Raw: []byte("raw")}}}
}

func TestHTTPDeliverBulkAnswers(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   []Status
	}{
		{"per entry", 200, `{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"DROP"}]}`, []Status{Success, Drop}},
		{"retry and unknown", 200, `{"statuses":[{"entryId":"a","status":"RETRY"},{"entryId":"b","status":"MAYBE"}]}`, []Status{Retry, Retry}},
		{"missing entry retries", 200, `{"statuses":[{"entryId":"b","status":"success"}]}`, []Status{Retry, Success}},
		{"empty body retries all", 200, ``, []Status{Retry, Retry}},
		{"not found discards all", 404, `nope`, []Status{Discard, Discard}},
		{"server error retries all", 500, `boom`, []Status{Retry, Retry}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{status: tt.status, body: tt.body}
			got, _ := HTTPDeliverer{App: startApp(t, app)}.DeliverBulk(context.Background(), twoEntries())
			if !slices.Equal(got, tt.want) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeBulkCallback answers OnBulkTopicEvent (or Unimplemented).
type fakeBulkCallback struct {
	runtimev1.AppCallbackClient
	runtimev1.AppCallbackAlphaClient
	unimplemented bool
	got           *runtimev1.TopicEventBulkRequest
}

func (f *fakeBulkCallback) answer(req *runtimev1.TopicEventBulkRequest) (*runtimev1.TopicEventBulkResponse, error) {
	f.got = req
	return &runtimev1.TopicEventBulkResponse{Statuses: []*runtimev1.TopicEventBulkResponseEntry{
		{EntryId: req.Entries[0].EntryId, Status: runtimev1.TopicEventResponse_DROP},
	}}, nil
}

func (f *fakeBulkCallback) OnBulkTopicEvent(_ context.Context, req *runtimev1.TopicEventBulkRequest, _ ...grpc.CallOption) (*runtimev1.TopicEventBulkResponse, error) {
	if f.unimplemented {
		return nil, status.Error(codes.Unimplemented, "no")
	}
	return f.answer(req)
}

func (f *fakeBulkCallback) OnBulkTopicEventAlpha1(_ context.Context, req *runtimev1.TopicEventBulkRequest, _ ...grpc.CallOption) (*runtimev1.TopicEventBulkResponse, error) {
	return f.answer(req)
}

func TestGRPCDeliverBulk(t *testing.T) {
	for _, alphaOnly := range []bool{false, true} {
		f := &fakeBulkCallback{unimplemented: alphaOnly}
		got, _ := GRPCDeliverer{App: f, Alpha: f}.DeliverBulk(context.Background(), twoEntries())
		if !slices.Equal(got, []Status{Drop, Retry}) {
			t.Errorf("alpha only %v: statuses %v, want [DROP RETRY]", alphaOnly, got)
		}
		req := f.got
		if req == nil || req.Type != BulkEventType || req.PubsubName != "ps" || req.Topic != "orders" || req.Path != "/bulk" || len(req.Entries) != 2 {
			t.Fatalf("alpha only %v: request %v", alphaOnly, req)
		}
		if ce := req.Entries[0].GetCloudEvent(); ce == nil || ce.Id != "e" || req.Entries[0].ContentType != cloudevents.ContentType {
			t.Errorf("entry 0 = %v, want the cloud event", req.Entries[0])
		}
		if b := req.Entries[1].GetBytes(); string(b) != "raw" || req.Entries[1].ContentType != contentTypeOctetStream {
			t.Errorf("entry 1 = %v, want raw bytes", req.Entries[1])
		}
	}
	f := &fakeBulkCallback{unimplemented: true}
	got, _ := GRPCDeliverer{App: f}.DeliverBulk(context.Background(), twoEntries())
	if !slices.Equal(got, []Status{Discard, Discard}) {
		t.Errorf("unimplemented: statuses %v, want discard all", got)
	}
}
