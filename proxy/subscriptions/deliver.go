package subscriptions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// Status is the app's verdict on one event.
type Status int

const (
	// Success: acknowledge.
	Success Status = iota
	// Retry: leave the message with the broker for redelivery.
	Retry
	// Drop: the app refuses the event; it goes to the dead-letter topic
	// when there is one, and is acknowledged.
	Drop
	// Discard: a gRPC app has no handler (Unimplemented): the event is
	// logged and acknowledged without dead-lettering, as in Dapr. (An HTTP
	// app's 404 is a Drop, as in Dapr.)
	Discard
)

func (s Status) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case Retry:
		return "RETRY"
	case Drop:
		return "DROP"
	case Discard:
		return "DISCARD"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Message is one event ready for the app.
type Message struct {
	// Event is the decoded CloudEvent; Data the bytes an HTTP app receives
	// (the envelope as read from the broker, or the wrapped raw payload).
	Event cloudevents.Event
	Data  []byte
	// Topic and PubsubName the event came from; Path the matched route.
	Topic      string
	PubsubName string
	Path       string
	// Metadata is the broker message's metadata, sent to the app as
	// headers (HTTP) or metadata (gRPC), plus "pubsubName".
	Metadata map[string]string
}

// Deliverer hands events to a subscriber. The error, when not nil, says
// why a Retry happened (the status is then Retry).
type Deliverer interface {
	Deliver(ctx context.Context, m *Message) (Status, error)
}

// MetadataKeyPubSub is the metadata entry naming the pub/sub component,
// sent with every delivery (Dapr's "pubsubName").
const MetadataKeyPubSub = "pubsubName"

// HTTPDeliverer POSTs events to an HTTP app.
type HTTPDeliverer struct {
	App invoke.AppChannel
}

// appResponse is the optional JSON answer of an HTTP app.
type appResponse struct {
	Status string `json:"status"`
}

// maxAppAnswer bounds how much of the app's answer is read.
const maxAppAnswer = 1 << 20

// Deliver implements Deliverer with Dapr's HTTP reply rules: 2xx with an
// empty or unreadable body, no status or SUCCESS acks; RETRY and unknown
// statuses retry; DROP and 404 drop; any other status retries.
func (d HTTPDeliverer) Deliver(ctx context.Context, m *Message) (Status, error) {
	md := make(map[string]*internalsv1.ListStringValue, len(m.Metadata)+2)
	for k, v := range m.Metadata {
		if validHeader(k, v) {
			md[strings.ToLower(k)] = &internalsv1.ListStringValue{Values: []string{v}}
		}
	}
	// The trace context travels as headers too, as with Dapr's callback span.
	tc := traceOf(m.Event)
	md[cloudevents.FieldTraceParent] = &internalsv1.ListStringValue{Values: []string{tc.parent}}
	if tc.state != "" {
		md[cloudevents.FieldTraceState] = &internalsv1.ListStringValue{Values: []string{tc.state}}
	}
	resp, err := d.App.Invoke(ctx, &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:        strings.TrimPrefix(m.Path, "/"),
				ContentType:   cloudevents.ContentType,
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST},
			},
			Metadata: md,
		},
		Body:          bytes.NewReader(m.Data),
		ContentLength: int64(len(m.Data)),
	})
	if err != nil {
		return Retry, fmt.Errorf("deliver event %s to the app: %w", cloudevents.String(m.Event, cloudevents.FieldID), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAppAnswer))
	code := int(resp.Message.GetStatus().GetCode())
	id := cloudevents.String(m.Event, cloudevents.FieldID)
	switch {
	case code >= 200 && code <= 299:
		var ar appResponse
		if err := json.Unmarshal(body, &ar); err != nil {
			return Success, nil // empty or not JSON: success, as in Dapr
		}
		return replyStatus(id, ar.Status)
	case code == http.StatusNotFound:
		// Dapr: not retriable, the event is dropped (so dead-lettered when
		// the subscription has a dead-letter topic).
		return Drop, fmt.Errorf("app has no handler for event %s at %s (404): %s", id, m.Path, trim(body))
	default:
		return Retry, fmt.Errorf("app answered event %s at %s with status %d: %s", id, m.Path, code, trim(body))
	}
}

func replyStatus(id, s string) (Status, error) {
	switch strings.ToUpper(s) {
	case "", "SUCCESS":
		return Success, nil
	case "RETRY":
		return Retry, fmt.Errorf("app asked to retry event %s", id)
	case "DROP":
		return Drop, nil
	}
	return Retry, fmt.Errorf("app answered event %s with unknown status %q; retrying", id, s)
}

// GRPCDeliverer calls AppCallback/OnTopicEvent of a gRPC app.
type GRPCDeliverer struct {
	App runtimev1.AppCallbackClient
	// Alpha, when set, serves bulk deliveries to apps that only implement
	// OnBulkTopicEventAlpha1.
	Alpha runtimev1.AppCallbackAlphaClient
}

// Deliver implements Deliverer with Dapr's gRPC reply rules.
func (d GRPCDeliverer) Deliver(ctx context.Context, m *Message) (Status, error) {
	req, err := TopicEventRequest(m)
	if err != nil {
		return Retry, err
	}
	md := metadata.MD{}
	for k, v := range m.Metadata {
		if validHeader(k, v) && !strings.HasPrefix(strings.ToLower(k), "grpc-") && !strings.HasPrefix(k, ":") {
			md.Append(strings.ToLower(k), v)
		}
	}
	tc := traceOf(m.Event)
	md.Set(cloudevents.FieldTraceParent, tc.parent)
	if tc.state != "" {
		md.Set(cloudevents.FieldTraceState, tc.state)
	}
	if tc.bin != nil {
		md.Set(traceBinKey, string(tc.bin))
	}
	res, err := d.App.OnTopicEvent(metadata.NewOutgoingContext(ctx, md), req)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return Discard, fmt.Errorf("app does not implement OnTopicEvent for event %s: %w", req.GetId(), err)
		}
		return Retry, fmt.Errorf("app failed event %s: %w", req.GetId(), err)
	}
	return StatusFromProto(req.GetId(), res.GetStatus())
}

// zeroTraceParent is the traceparent daprd delivers with an event that
// carries no valid trace context.
const zeroTraceParent = "00-00000000000000000000000000000000-0000000000000000-00"

// traceBinKey is OpenCensus' binary trace context, which daprd sends to
// gRPC apps next to traceparent.
const traceBinKey = "grpc-trace-bin"

// traceContext is the trace context delivered with an event.
type traceContext struct {
	parent, state string
	bin           []byte // nil when the event has no valid trace context
}

// traceOf returns the trace context to deliver ev with, as daprd does: the
// event's traceparent (or traceid) when it is a valid W3C traceparent, its
// tracestate, and for gRPC the binary form; otherwise zeroTraceParent.
func traceOf(ev cloudevents.Event) traceContext {
	tp := cloudevents.String(ev, cloudevents.FieldTraceParent)
	if tp == "" {
		tp = cloudevents.String(ev, cloudevents.FieldTraceID)
	}
	bin, ok := invoke.TraceBinFromParent(tp)
	if !ok || allZero(bin[2:18]) || allZero(bin[19:27]) {
		return traceContext{parent: zeroTraceParent}
	}
	tc := traceContext{parent: tp, bin: bin}
	if ts := cloudevents.String(ev, cloudevents.FieldTraceState); validHeader(cloudevents.FieldTraceState, ts) {
		tc.state = ts
	}
	return tc
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// StatusFromProto maps a TopicEventResponse status.
func StatusFromProto(id string, s runtimev1.TopicEventResponse_TopicEventResponseStatus) (Status, error) {
	switch s {
	case runtimev1.TopicEventResponse_SUCCESS:
		return Success, nil
	case runtimev1.TopicEventResponse_RETRY:
		return Retry, fmt.Errorf("app asked to retry event %s", id)
	case runtimev1.TopicEventResponse_DROP:
		return Drop, nil
	}
	return Retry, fmt.Errorf("app answered event %s with unknown status %v; retrying", id, s)
}

// ErrEnvelope is returned (wrapped) when an event cannot be converted for
// a gRPC subscriber.
var ErrEnvelope = errors.New("cannot convert cloud event for gRPC")

// TopicEventRequest converts m for gRPC subscribers (OnTopicEvent and
// streaming subscriptions), as Dapr does.
func TopicEventRequest(m *Message) (*runtimev1.TopicEventRequest, error) {
	ev := m.Event
	data, err := cloudevents.Data(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	ext, err := structpb.NewStruct(jsonSafe(cloudevents.Extensions(ev)))
	if err != nil {
		return nil, fmt.Errorf("%w: extensions: %w", ErrEnvelope, err)
	}
	return &runtimev1.TopicEventRequest{
		Id:              cloudevents.String(ev, cloudevents.FieldID),
		Source:          cloudevents.String(ev, cloudevents.FieldSource),
		Type:            cloudevents.String(ev, cloudevents.FieldType),
		SpecVersion:     cloudevents.String(ev, cloudevents.FieldSpecVersion),
		DataContentType: cloudevents.String(ev, cloudevents.FieldDataContentType),
		Data:            data,
		Topic:           m.Topic,
		PubsubName:      m.PubsubName,
		Path:            m.Path,
		Extensions:      ext,
	}, nil
}

// jsonSafe turns values structpb cannot take (json.Number) into ones it
// can, through a JSON round trip.
func jsonSafe(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return map[string]any{}
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return map[string]any{}
	}
	return out
}

// validHeader reports whether k: v can be sent as an HTTP header or gRPC
// metadata entry.
func validHeader(k, v string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func trim(b []byte) string {
	const n = 256
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
