package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/proxy/api"
)

// recordingBroker records what is published; with fail set it refuses
// entries whose data is "bad".
type recordingBroker struct {
	pubsub.PubSub
	fail bool
	mu   sync.Mutex
	reqs []*pubsub.PublishRequest
}

func (r *recordingBroker) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	// The event's data, not anywhere in its envelope: a random id such as
	// "…-4bad-…" must not make the broker refuse it.
	if r.fail && (string(req.Data) == "bad" || strings.Contains(string(req.Data), `"data":"bad"`)) {
		return errors.New("broker refused the message")
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return nil
}

func (r *recordingBroker) take() []*pubsub.PublishRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// pubsubHandler serves "ps" (recording) and "flaky" (refusing "bad"); scoping
// is extra metadata of "ps", such as its topic scoping fields.
func pubsubHandler(t *testing.T, scoping ...components.MetadataItem) (*Handler, *recordingBroker, *recordingBroker) {
	t.Helper()
	rec := &recordingBroker{PubSub: inmemory.New(nil)}
	failing := &recordingBroker{PubSub: inmemory.New(nil), fail: true}
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.rec":  func() pubsub.PubSub { return rec },
		"pubsub.fail": func() pubsub.PubSub { return failing },
	})
	env := components.Env{AppID: "pubapp"}
	scopes := topicscope.NewTable(nil)
	m := components.NewManager(scopes.Kind(pubsub.Kind(newFn, types)), components.ManagerOptions{Resolve: env.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{
		{Name: "ps", Type: "pubsub.rec", InitTimeout: components.DefaultInitTimeout, Metadata: scoping},
		{Name: "flaky", Type: "pubsub.fail", InitTimeout: components.DefaultInitTimeout},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	h := New(Config{AppID: "pubapp", PubSub: api.NewPubSub(api.PubSubConfig{Registry: m.Registry(), AppID: "pubapp", Scopes: scopes.Of}), MaxRequestBodySize: 1 << 20})
	return h, rec, failing
}

func servePubSub(h http.Handler, method, target, ct, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPublishRoute(t *testing.T) {
	h, rec, _ := pubsubHandler(t)
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tests := []struct {
		name, method, target, ct, body string
		check                          func(t *testing.T, req *pubsub.PublishRequest, ev map[string]any)
	}{
		{"json", http.MethodPost, "/v1.0/publish/ps/orders?metadata.ttlInSeconds=60&metadata.partitionKey=k", "application/json", `{"n":1}`,
			func(t *testing.T, req *pubsub.PublishRequest, ev map[string]any) {
				if req.Topic != "orders" || req.ContentType != "application/cloudevents+json" || req.Metadata["partitionKey"] != "k" {
					t.Errorf("request = %+v", req)
				}
				if d, _ := ev["data"].(map[string]any); d["n"] != 1.0 || ev["source"] != "pubapp" || ev["traceparent"] != tp || ev["expiration"] == nil || ev["pubsubname"] != "ps" {
					t.Errorf("envelope = %v", ev)
				}
			}},
		{"put nested topic", http.MethodPut, "/v1.0/publish/ps/a/b", "text/plain", "hi",
			func(t *testing.T, req *pubsub.PublishRequest, ev map[string]any) {
				if req.Topic != "a/b" || ev["data"] != "hi" || ev["topic"] != "a/b" {
					t.Errorf("req %+v ev %v", req, ev)
				}
			}},
		{"raw payload", http.MethodPost, "/v1.0/publish/ps/raw?metadata.rawPayload=true", "application/octet-stream", "\x00raw",
			func(t *testing.T, req *pubsub.PublishRequest, ev map[string]any) {
				if string(req.Data) != "\x00raw" || req.ContentType != "application/octet-stream" {
					t.Errorf("raw = %q %q", req.Data, req.ContentType)
				}
			}},
		{"caller envelope", http.MethodPost, "/v1.0/publish/ps/ce", "application/cloudevents+json", `{"id":"mine","type":"my.type","data":"x"}`,
			func(t *testing.T, req *pubsub.PublishRequest, ev map[string]any) {
				if ev["id"] != "mine" || ev["type"] != "my.type" || ev["source"] != "Dapr" || ev["topic"] != "ce" {
					t.Errorf("completed envelope = %v", ev)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := servePubSub(h, tt.method, tt.target, tt.ct, tt.body, "Traceparent", tp)
			if w.Code != http.StatusNoContent {
				t.Fatalf("status = %d: %s", w.Code, w.Body)
			}
			reqs := rec.take()
			if len(reqs) != 1 {
				t.Fatalf("published %d", len(reqs))
			}
			var ev map[string]any
			_ = json.Unmarshal(reqs[0].Data, &ev)
			tt.check(t, reqs[0], ev)
		})
	}
}

func TestPublishRouteErrors(t *testing.T) {
	h, _, _ := pubsubHandler(t)
	tests := []struct {
		name, target, ct, body string
		status                 int
		code                   string
	}{
		{"unknown pubsub", "/v1.0/publish/nope/t", "", "x", 404, "ERR_PUBSUB_NOT_FOUND"},
		{"no topic", "/v1.0/publish/ps/", "", "x", 404, "ERR_TOPIC_NAME_EMPTY"},
		{"bad envelope", "/v1.0/publish/ps/t", "application/cloudevents+json", "{", 500, "ERR_PUBSUB_CLOUD_EVENTS_SER"},
		{"bad rawPayload", "/v1.0/publish/ps/t?metadata.rawPayload=maybe", "", "x", 400, "ERR_PUBSUB_REQUEST_METADATA"},
		{"too large", "/v1.0/publish/ps/t", "", strings.Repeat("x", 2<<20), 413, "ERR_BODY_TOO_LARGE"},
		{"bulk not json", "/v1.0/publish/bulk/ps/t", "", "{", 400, "ERR_PUBSUB_EVENTS_SER"},
		{"bulk type mismatch", "/v1.0/publish/bulk/ps/t", "", `[{"entryId":"1","event":{"a":1},"contentType":"text/plain"}]`, 400, "ERR_PUBSUB_EVENTS_SER"},
		{"bulk missing id", "/v1.0/publish/bulk/ps/t", "", `[{"event":"a","contentType":"text/plain"}]`, 400, "ERR_PUBSUB_EVENTS_SER"},
		{"bulk unknown pubsub", "/v1.0-alpha1/publish/bulk/nope/t", "", `[]`, 404, "ERR_PUBSUB_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := servePubSub(h, http.MethodPost, tt.target, tt.ct, tt.body)
			var b struct{ ErrorCode string }
			_ = json.Unmarshal(w.Body.Bytes(), &b)
			if w.Code != tt.status || b.ErrorCode != tt.code {
				t.Errorf("got %d %s, want %d %s", w.Code, w.Body, tt.status, tt.code)
			}
		})
	}
}

func TestBulkPublishRoute(t *testing.T) {
	h, rec, _ := pubsubHandler(t)
	body := `[
		{"entryId":"1","event":{"n":1},"contentType":"application/json"},
		{"entryId":"2","event":"hello","contentType":"text/plain","metadata":{"k":"v"}},
		{"entryId":"3","event":"AAE=","contentType":"application/octet-stream"}
	]`
	for _, target := range []string{"/v1.0/publish/bulk/ps/t", "/v1.0-alpha1/publish/bulk/ps/t"} {
		w := servePubSub(h, http.MethodPost, target, "application/json", body)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
		reqs := rec.take()
		if len(reqs) != 3 {
			t.Fatalf("published %d", len(reqs))
		}
		var ev map[string]any
		_ = json.Unmarshal(reqs[2].Data, &ev)
		if ev["data_base64"] != "AAE=" || reqs[1].Metadata["k"] != "v" {
			t.Errorf("entries = %s / %v", reqs[2].Data, reqs[1].Metadata)
		}
	}

	// Partial failure: 500 with the failed entries and the error code.
	w := servePubSub(h, http.MethodPost, "/v1.0/publish/bulk/flaky/t", "", `[{"entryId":"ok","event":"fine","contentType":"text/plain"},{"entryId":"no","event":"bad","contentType":"text/plain"}]`)
	var res struct {
		FailedEntries []struct{ EntryID, Error string }
		ErrorCode     string
	}
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || res.ErrorCode != "ERR_PUBSUB_PUBLISH_MESSAGE" || len(res.FailedEntries) != 1 || res.FailedEntries[0].EntryID != "no" || !strings.Contains(res.FailedEntries[0].Error, "refused") {
		t.Errorf("partial failure = %d %s", w.Code, w.Body)
	}
}

// TestDecodeBulkEntries: a bad bulk publish body is worded as daprd words
// it (pubsub/http/errorcodes), its decoder's texts included.
func TestDecodeBulkEntries(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"entryID": "}`, "unexpected EOF"},
		{`{"entryID": ""}`, "json: cannot unmarshal object into Go value of type []http.bulkPublishMessageEntry"},
		{``, "EOF"},
		{`[{"entryId": 1}]`, "json: cannot unmarshal number into Go struct field bulkPublishMessageEntry.entryId of type string"},
		{`[{"entryId": "a", "event": {"x": 1}}]`, ""},
	} {
		_, err := decodeBulkEntries([]byte(tc.body))
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("decode %q: %v, want %q", tc.body, err, tc.want)
		}
	}
}
