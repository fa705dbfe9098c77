package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// registerPubSub adds the publish API routes when cfg.PubSub is set.
func (h *Handler) registerPubSub() {
	if h.cfg.PubSub == nil {
		return
	}
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		h.route(m+" /v1.0/publish/{pubsub}/{topic...}", h.publish)
		// A path without a topic is cleaned to this; answer like Dapr, not
		// with an invocation error.
		h.route(m+" /v1.0/publish/{pubsub}", h.publish)
		for _, v := range []string{"v1.0", "v1.0-alpha1"} {
			h.route(m+" /"+v+"/publish/bulk/{pubsub}/{topic...}", h.bulkPublish)
			h.route(m+" /"+v+"/publish/bulk/{pubsub}", h.bulkPublish)
		}
	}
}

// requestMetadata returns the metadata.* query parameters.
func requestMetadata(r *http.Request) map[string]string {
	const prefix = "metadata."
	var md map[string]string
	for k, v := range r.URL.Query() {
		if strings.HasPrefix(k, prefix) && len(v) > 0 {
			if md == nil {
				md = make(map[string]string)
			}
			md[k[len(prefix):]] = v[0]
		}
	}
	return md
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeErr(w, h.bodyErr(err))
		return
	}
	err = h.cfg.PubSub.Publish(r.Context(), api.PublishRequest{
		PubsubName:  r.PathValue("pubsub"),
		Topic:       r.PathValue("topic"),
		Data:        body,
		ContentType: r.Header.Get("Content-Type"),
		Metadata:    requestMetadata(r),
		TraceParent: r.Header.Get("Traceparent"),
		TraceState:  r.Header.Get("Tracestate"),
		HTTP:        true,
	})
	if err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bulkPublishMessageEntry is one entry of a bulk publish body; named as in
// daprd, whose decoding errors name it (see decodeBulkEntries).
type bulkPublishMessageEntry struct {
	EntryID     string            `json:"entryId"`
	Event       any               `json:"event"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

// decodeBulkEntries reads a bulk publish body with daprd's decoder (a
// json.Decoder: "unexpected EOF" for a truncated body) and words a body of
// the wrong shape as daprd does, naming its type in its package (http).
func decodeBulkEntries(body []byte) ([]bulkPublishMessageEntry, error) {
	var in []bulkPublishMessageEntry
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&in)
	if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field == "" {
		return nil, fmt.Errorf("json: cannot unmarshal %s into Go value of type []http.bulkPublishMessageEntry", te.Value)
	}
	return in, err
}

// bulkResponse is Dapr's bulk publish failure body.
type bulkResponse struct {
	FailedEntries []bulkFailed `json:"failedEntries"`
	ErrorCode     string       `json:"errorCode,omitempty"`
}

type bulkFailed struct {
	EntryID string `json:"entryId"`
	Error   string `json:"error,omitempty"`
}

func (h *Handler) bulkPublish(w http.ResponseWriter, r *http.Request) {
	name, topic := r.PathValue("pubsub"), r.PathValue("topic")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeErr(w, h.bodyErr(err))
		return
	}
	in, err := decodeBulkEntries(body)
	if err != nil {
		h.writeErr(w, apierr.PubSubEvents(name, topic, err))
		return
	}
	req := api.BulkPublishRequest{
		PubsubName: name, Topic: topic, Metadata: requestMetadata(r),
		TraceParent: r.Header.Get("Traceparent"), TraceState: r.Header.Get("Tracestate"),
		Entries: make([]api.BulkPublishEntry, len(in)),
	}
	for i, e := range in {
		b, err := eventBytes(e.Event, e.ContentType)
		if err != nil {
			h.writeErr(w, apierr.PubSubEvents(name, topic, fmt.Errorf("entry %q: %w", e.EntryID, err)))
			return
		}
		req.Entries[i] = api.BulkPublishEntry{EntryID: e.EntryID, Event: b, ContentType: e.ContentType, Metadata: e.Metadata}
	}
	failed, err := h.cfg.PubSub.BulkPublish(r.Context(), req)
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if len(failed) == 0 {
		h.writeErr(w, err)
		return
	}
	res := bulkResponse{ErrorCode: apierr.CodePubSubPublishMessage, FailedEntries: make([]bulkFailed, len(failed))}
	for i, f := range failed {
		res.FailedEntries[i] = bulkFailed{EntryID: f.EntryID, Error: f.Error}
	}
	h.log.Debug("bulk publish partly failed", "pubsub", name, "topic", topic, "failed", len(failed), "error", err)
	b, _ := json.Marshal(res)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apierr.From(err).HTTPStatus)
	_, _ = w.Write(b)
}

var errContentTypeMismatch = errors.New("the event does not match its contentType")

// eventBytes converts a bulk entry's JSON event to the bytes to publish,
// by its content type as Dapr does: text and XML types take a JSON string,
// application/octet-stream a base64 string, JSON and cloud event types any
// JSON value.
func eventBytes(ev any, ct string) ([]byte, error) {
	switch {
	case cloudevents.IsBinary(ct):
		s, ok := ev.(string)
		if !ok {
			return nil, errContentTypeMismatch
		}
		return base64.StdEncoding.DecodeString(s)
	case cloudevents.IsString(ct):
		s, ok := ev.(string)
		if !ok {
			return nil, errContentTypeMismatch
		}
		return []byte(s), nil
	case cloudevents.IsJSON(ct) || cloudevents.IsCloudEvent(ct):
		return json.Marshal(ev)
	}
	return nil, fmt.Errorf("unsupported contentType %q: use application/json, application/cloudevents+json, text/*, application/xml or application/octet-stream", ct)
}

// writeErr writes an API error and logs it at debug level.
func (h *Handler) writeErr(w http.ResponseWriter, err error) {
	h.log.Debug("pub/sub request failed", "error", err)
	apierr.WriteHTTP(w, err)
}

// bodyErr maps a body read failure: over the size limit is 413.
func (h *Handler) bodyErr(err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return apierr.BodyTooLarge(h.cfg.MaxRequestBodySize)
	}
	return apierr.BodyRead(err)
}
