package subscriptions

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// Dapr's bulk subscribe defaults (spec.bulkSubscribe without counts).
const (
	DefaultBulkMaxMessages = 100
	DefaultBulkMaxAwait    = 1000 * time.Millisecond
)

// BulkEventType is the "type" of a bulk envelope, as in Dapr.
const BulkEventType = "com.dapr.event.sent.bulk"

// contentTypeOctetStream is the content type of raw entries without one.
const contentTypeOctetStream = "application/octet-stream"

// BulkLimits is the subscription's batch size and wait, with Dapr's
// defaults for unset (zero) values.
func (s *Subscription) BulkLimits() (maxMessages int, maxAwait time.Duration) {
	maxMessages, maxAwait = DefaultBulkMaxMessages, DefaultBulkMaxAwait
	if n := s.BulkSubscribe.MaxMessagesCount; n > 0 {
		maxMessages = int(n)
	}
	if ms := s.BulkSubscribe.MaxAwaitDurationMs; ms > 0 {
		maxAwait = time.Duration(ms) * time.Millisecond
	}
	return maxMessages, maxAwait
}

// BulkEntry is one event of a batch.
type BulkEntry struct {
	// EntryID names the entry in the app's answer.
	EntryID string
	// Message is the event as prepared for a single delivery.
	Message *Message
	// Raw is the broker payload of a rawPayload subscription (sent as is,
	// base64 in HTTP JSON); nil for cloud events.
	Raw []byte
	// ContentType of the entry (defaults: the CloudEvents type, or
	// application/octet-stream for raw entries).
	ContentType string
}

// BulkMessage is a batch of events for one route.
type BulkMessage struct {
	Topic, PubsubName, Path string
	// Metadata is the batch's metadata ("pubsubName").
	Metadata map[string]string
	Entries  []BulkEntry
}

// BulkDeliverer hands a batch to the app in one call. It returns one
// status per entry, in entry order; the error, when not nil, says why
// entries were not successful (for logs).
type BulkDeliverer interface {
	DeliverBulk(ctx context.Context, b *BulkMessage) ([]Status, error)
}

// newEntryID returns a random UUID (version 4), the shape of Dapr's ids.
func newEntryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// fill returns n copies of st.
func fill(n int, st Status) []Status {
	out := make([]Status, n)
	for i := range out {
		out[i] = st
	}
	return out
}

// bulkEnvelope is the JSON an HTTP app receives (Dapr's bulk envelope).
type bulkEnvelope struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Topic      string            `json:"topic"`
	PubsubName string            `json:"pubsubname"`
	Metadata   map[string]string `json:"metadata"`
	Entries    []bulkEntryJSON   `json:"entries"`
}

type bulkEntryJSON struct {
	EntryID     string            `json:"entryId"`
	Event       any               `json:"event"`
	Metadata    map[string]string `json:"metadata"`
	ContentType string            `json:"contentType,omitempty"`
}

// bulkAnswer is an HTTP app's BulkSubscribeResponse.
type bulkAnswer struct {
	Statuses []struct {
		EntryID string `json:"entryId"`
		Status  string `json:"status"`
	} `json:"statuses"`
}

// envelope builds the JSON body for b.
func (b *BulkMessage) envelope() ([]byte, error) {
	env := bulkEnvelope{
		ID: newEntryID(), Type: BulkEventType, Topic: b.Topic, PubsubName: b.PubsubName,
		Metadata: b.Metadata, Entries: make([]bulkEntryJSON, len(b.Entries)),
	}
	for i, e := range b.Entries {
		je := bulkEntryJSON{EntryID: e.EntryID, Metadata: e.Message.Metadata, ContentType: e.ContentType}
		switch {
		case e.Raw != nil:
			je.Event = base64.StdEncoding.EncodeToString(e.Raw)
			if je.ContentType == "" {
				je.ContentType = contentTypeOctetStream
			}
		default:
			ev, err := cloudevents.Marshal(e.Message.Event)
			if err != nil {
				return nil, fmt.Errorf("encode event %s of the batch: %w", e.EntryID, err)
			}
			je.Event = json.RawMessage(ev)
			if je.ContentType == "" || cloudevents.IsBinary(je.ContentType) {
				je.ContentType = cloudevents.ContentType
			}
		}
		env.Entries[i] = je
	}
	return json.Marshal(env)
}

// DeliverBulk implements BulkDeliverer with Dapr's HTTP rules: one POST of
// the bulk envelope to the route; a 2xx answer's statuses decide per entry
// (SUCCESS acks, DROP drops, RETRY, unknown or missing retries); an
// unreadable answer or another status retries all entries; 404 discards
// all.
func (d HTTPDeliverer) DeliverBulk(ctx context.Context, b *BulkMessage) ([]Status, error) {
	n := len(b.Entries)
	body, err := b.envelope()
	if err != nil {
		return fill(n, Retry), err
	}
	md := make(map[string]*internalsv1.ListStringValue, len(b.Metadata))
	for k, v := range b.Metadata {
		if validHeader(k, v) {
			md[strings.ToLower(k)] = &internalsv1.ListStringValue{Values: []string{v}}
		}
	}
	resp, err := d.App.Invoke(ctx, &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:        strings.TrimPrefix(b.Path, "/"),
				ContentType:   "application/json",
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST},
			},
			Metadata: md,
		},
		Body:          bytes.NewReader(body),
		ContentLength: int64(len(body)),
	})
	if err != nil {
		return fill(n, Retry), fmt.Errorf("deliver a batch of %d events to the app: %w", n, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAppAnswer))
	code := int(resp.Message.GetStatus().GetCode())
	switch {
	case code >= 200 && code <= 299:
		var ba bulkAnswer
		if err := json.Unmarshal(answer, &ba); err != nil {
			return fill(n, Retry), fmt.Errorf("app answered a batch at %s without a readable BulkSubscribeResponse (%w); retrying all entries", b.Path, err)
		}
		got := make(map[string]string, len(ba.Statuses))
		for _, s := range ba.Statuses {
			got[s.EntryID] = s.Status
		}
		return b.statuses(func(id string) (string, bool) { s, ok := got[id]; return s, ok })
	case code == http.StatusNotFound:
		return fill(n, Discard), fmt.Errorf("app has no handler for the batch at %s (404): %s", b.Path, trim(answer))
	default:
		return fill(n, Retry), fmt.Errorf("app answered a batch at %s with status %d: %s", b.Path, code, trim(answer))
	}
}

// statuses maps the app's per-entry answers (looked up by entry id) with
// the reply rules; a missing entry retries.
func (b *BulkMessage) statuses(lookup func(id string) (string, bool)) ([]Status, error) {
	out := make([]Status, len(b.Entries))
	retries := 0
	for i, e := range b.Entries {
		s, ok := lookup(e.EntryID)
		switch {
		case !ok:
			out[i] = Retry
		case strings.EqualFold(s, "SUCCESS"):
			out[i] = Success
		case strings.EqualFold(s, "DROP"):
			out[i] = Drop
		default: // RETRY, "" and unknown statuses
			out[i] = Retry
		}
		if out[i] == Retry {
			retries++
		}
	}
	if retries > 0 {
		return out, fmt.Errorf("app asked to retry (or did not answer for) %d of %d entries of the batch", retries, len(out))
	}
	return out, nil
}
