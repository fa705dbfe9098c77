package cloudevents

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is a decoded CloudEvent: field name to JSON value.
type Event = map[string]any

// Values Dapr writes.
const (
	SpecVersion            = "1.0"
	DefaultType            = "com.dapr.event.sent"
	DefaultSource          = "Dapr"
	DefaultDataContentType = "text/plain"
	// ContentType is the media type of an envelope.
	ContentType = "application/cloudevents+json"
)

// Envelope fields, as named on the wire.
const (
	FieldID              = "id"
	FieldSource          = "source"
	FieldType            = "type"
	FieldSpecVersion     = "specversion"
	FieldDataContentType = "datacontenttype"
	FieldData            = "data"
	FieldDataBase64      = "data_base64"
	FieldSubject         = "subject"
	FieldTime            = "time"
	FieldTopic           = "topic"
	FieldPubsubName      = "pubsubname"
	FieldTraceID         = "traceid"
	FieldTraceParent     = "traceparent"
	FieldTraceState      = "tracestate"
	FieldExpiration      = "expiration"
)

// Request metadata keys that change the envelope.
const (
	// MetadataTTLInSeconds sets "expiration" to now + TTL (unless the
	// broker expires messages itself).
	MetadataTTLInSeconds = "ttlInSeconds"
	// MetadataRawPayload ("true") publishes the body without an envelope.
	MetadataRawPayload = "rawPayload"
	// OverridePrefix starts the metadata keys that override envelope
	// fields: cloudevent.id, .source, .type, .traceid, .traceparent,
	// .tracestate (case-insensitive, as Dapr decodes them).
	OverridePrefix = "cloudevent."
)

// Request is one message to wrap.
type Request struct {
	// Data is the request body; DataContentType its Content-Type ("" means
	// text/plain). With application/cloudevents+json, Data is the caller's
	// own envelope, which is completed rather than wrapped.
	Data            []byte
	DataContentType string
	Topic           string
	PubsubName      string
	// Source is the publishing app's ID.
	Source string
	// TraceParent and TraceState are the W3C trace context of the publish
	// call ("" when there is none).
	TraceParent string
	TraceState  string
	// Metadata is the request metadata (ttlInSeconds, cloudevent.*).
	Metadata map[string]string
	// BrokerTTL is true when the broker expires messages itself
	// (pubsub.FeatureMessageTTL): no "expiration" is written then.
	BrokerTTL bool
	// Now is the publish time; zero means time.Now().
	Now time.Time
}

// ErrNotObject is returned (wrapped) for a caller envelope that is not a
// JSON object.
var ErrNotObject = errors.New("cloud event must be a JSON object")

// Wrap returns the envelope Dapr publishes for req.
func Wrap(req Request) (Event, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	var ev Event
	if IsCloudEvent(req.DataContentType) {
		var err error
		if ev, err = complete(req, now); err != nil {
			return nil, err
		}
	} else {
		ev = wrap(req, now)
	}
	applyTTL(ev, req, now)
	return ev, nil
}

// Marshal encodes an envelope.
func Marshal(ev Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode cloud event: %w", err)
	}
	return b, nil
}

// overrides are the envelope fields request metadata may set.
type overrides struct {
	id, source, typ, traceID, traceParent, traceState string
}

func readOverrides(md map[string]string) overrides {
	var o overrides
	for k, v := range md {
		if len(k) <= len(OverridePrefix) || !strings.EqualFold(k[:len(OverridePrefix)], OverridePrefix) {
			continue
		}
		switch strings.ToLower(k[len(OverridePrefix):]) {
		case FieldID:
			o.id = v
		case FieldSource:
			o.source = v
		case FieldType:
			o.typ = v
		case FieldTraceID:
			o.traceID = v
		case FieldTraceParent:
			o.traceParent = v
		case FieldTraceState:
			o.traceState = v
		}
	}
	return o
}

// wrap builds a new envelope around req.Data.
func wrap(req Request, now time.Time) Event {
	o := readOverrides(req.Metadata)
	id := firstNonEmpty(o.id, NewID())
	source := firstNonEmpty(o.source, req.Source, DefaultSource)
	typ := firstNonEmpty(o.typ, DefaultType)
	// traceid and traceparent carry the same value; an explicit traceparent
	// override wins over a traceid one (Dapr's rule).
	trace := firstNonEmpty(o.traceParent, o.traceID, req.TraceParent)
	traceState := firstNonEmpty(o.traceState, req.TraceState)
	ct := firstNonEmpty(req.DataContentType, DefaultDataContentType)

	ev := Event{
		FieldID:              id,
		FieldSpecVersion:     SpecVersion,
		FieldDataContentType: ct,
		FieldSource:          source,
		FieldType:            typ,
		FieldTopic:           req.Topic,
		FieldPubsubName:      req.PubsubName,
		FieldTraceID:         trace,
		FieldTraceParent:     trace,
		FieldTraceState:      traceState,
		FieldTime:            now.Format(time.RFC3339),
	}
	switch {
	case IsJSON(ct):
		var v any
		if err := decodePrecise(req.Data, &v); err != nil {
			// Not JSON after all: Dapr keeps the text.
			v = string(req.Data)
		}
		ev[FieldData] = v
	case IsBinary(ct):
		ev[FieldDataBase64] = base64.StdEncoding.EncodeToString(req.Data)
	default:
		ev[FieldData] = string(req.Data)
	}
	return ev
}

// complete fills in the caller's own envelope: the routing and trace
// fields are set by the sidecar, the rest only when missing.
func complete(req Request, now time.Time) (Event, error) {
	var ev Event
	if err := decodePrecise(req.Data, &ev); err != nil {
		return nil, fmt.Errorf("decode cloud event: %w", err)
	}
	if ev == nil {
		return nil, fmt.Errorf("decode cloud event: %w", ErrNotObject)
	}
	if _, ok := ev[FieldTime]; !ok {
		ev[FieldTime] = now.Format(time.RFC3339)
	}
	if req.TraceParent != "" || ev[FieldTraceParent] == nil {
		ev[FieldTraceID] = req.TraceParent
		ev[FieldTraceParent] = req.TraceParent
		ev[FieldTraceState] = req.TraceState
	}
	ev[FieldTopic] = req.Topic
	ev[FieldPubsubName] = req.PubsubName
	if ev[FieldID] == nil {
		ev[FieldID] = NewID()
	}
	if ev[FieldSource] == nil {
		ev[FieldSource] = DefaultSource
	}
	if ev[FieldType] == nil {
		ev[FieldType] = DefaultType
	}
	if ev[FieldSpecVersion] == nil {
		ev[FieldSpecVersion] = SpecVersion
	}
	return ev, nil
}

// applyTTL writes "expiration" for metadata ttlInSeconds, unless the broker
// handles TTLs. An invalid TTL is ignored here, as in Dapr (the broker may
// still refuse it).
func applyTTL(ev Event, req Request, now time.Time) {
	if req.BrokerTTL {
		return
	}
	v := req.Metadata[MetadataTTLInSeconds]
	if v == "" {
		return
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs <= 0 {
		return
	}
	const maxSecs = int64(1<<63-1) / int64(time.Second)
	secs = min(secs, maxSecs)
	ev[FieldExpiration] = now.UTC().Add(time.Duration(secs) * time.Second).Format(time.RFC3339)
}

// Parse decodes an envelope read from a broker. Numbers decode as float64,
// as in Dapr (routing rules compare them as doubles); a number too large
// for a float64 stays a json.Number instead of failing the whole event.
func Parse(data []byte) (Event, error) {
	var ev Event
	if err := decodePrecise(data, &ev); err != nil {
		return nil, fmt.Errorf("decode cloud event: %w", err)
	}
	if ev == nil {
		return nil, fmt.Errorf("decode cloud event: %w", ErrNotObject)
	}
	for k, v := range ev {
		ev[k] = floatNumbers(v)
	}
	return ev, nil
}

// floatNumbers replaces the json.Numbers in v that fit a float64.
func floatNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return f
		}
	case map[string]any:
		for k, e := range x {
			x[k] = floatNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = floatNumbers(e)
		}
	}
	return v
}

// Expired reports whether the event's "expiration" is before now. A
// missing or unreadable expiration never expires.
func Expired(ev Event, now time.Time) bool {
	s, ok := ev[FieldExpiration].(string)
	if !ok || s == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return false
	}
	return t.Before(now)
}

// FromRawPayload is the envelope a subscriber with rawPayload builds around
// a message published without one: data_base64 of the bytes, a fresh ID.
func FromRawPayload(data []byte, topic, pubsubName string) Event {
	return Event{
		FieldID:              NewID(),
		FieldSpecVersion:     SpecVersion,
		FieldDataContentType: "application/octet-stream",
		FieldSource:          DefaultSource,
		FieldType:            DefaultType,
		FieldTopic:           topic,
		FieldPubsubName:      pubsubName,
		FieldDataBase64:      base64.StdEncoding.EncodeToString(data),
	}
}

// String returns a string field of ev ("" when missing or not a string).
func String(ev Event, field string) string {
	s, _ := ev[field].(string)
	return s
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// decodePrecise decodes one JSON value keeping numbers exact, and refuses
// trailing data.
func decodePrecise(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
