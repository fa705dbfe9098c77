package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// fakeApp is an HTTP app whose answer per path the test sets.
type fakeApp struct {
	mu      sync.Mutex
	status  int
	body    string
	got     []*http.Request
	bodies  [][]byte
	subsRaw string
	// subsAppID is the Dapr-App-Id of the last GET /dapr/subscribe.
	subsAppID string
}

func (f *fakeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/dapr/subscribe" {
		f.subsAppID = r.Header.Get("Dapr-App-Id")
		if f.subsRaw == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, f.subsRaw)
		return
	}
	f.got = append(f.got, r)
	f.bodies = append(f.bodies, b)
	w.WriteHeader(f.status)
	_, _ = io.WriteString(w, f.body)
}

func startApp(t *testing.T, f *fakeApp) *appchannel.HTTP {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Port: p, APIToken: "app-token"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func envelope(t *testing.T, md map[string]string) []byte {
	t.Helper()
	ev, err := cloudevents.Wrap(cloudevents.Request{Data: []byte(`{"n":1}`), DataContentType: "application/json", Topic: "orders", PubsubName: "ps", Source: "pub", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cloudevents.Marshal(ev)
	return b
}

// TestReplyRules drives the whole subscriber path (Processor + HTTP
// delivery) for each app answer and checks what the broker is told.
func TestReplyRules(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		deadLetter bool
		wantAck    bool
		wantDLQ    bool
		wantLabels string // process_status|status of the ingress metric
	}{
		{"200 empty", 200, "", false, true, false, "success|success"},
		{"204", 204, "", false, true, false, "success|success"},
		{"200 not json", 200, "ok", false, true, false, "success|success"},
		{"200 json without status", 200, `{"x":1}`, false, true, false, "success|success"},
		{"SUCCESS", 200, `{"status":"SUCCESS"}`, false, true, false, "success|success"},
		{"RETRY with dead letter", 200, `{"status":"RETRY"}`, true, true, true, "retry|retry"},
		{"RETRY", 200, `{"status":"RETRY"}`, false, false, false, "retry|retry"},
		{"unknown status", 200, `{"status":"MAYBE"}`, false, false, false, "retry|retry"},
		{"DROP without dead letter", 200, `{"status":"DROP"}`, false, true, false, "drop|success"},
		{"DROP with dead letter", 200, `{"status":"DROP"}`, true, true, true, "drop|success"},
		{"404 with dead letter", 404, "no", true, true, true, "drop|success"},
		{"404", 404, "no", false, true, false, "drop|success"},
		{"500 with dead letter", 500, "boom", true, true, true, "retry|retry"},
		{"500", 500, "boom", false, false, false, "retry|retry"},
		{"503", 503, "", false, false, false, "retry|retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &fakeApp{status: tt.status, body: tt.body}
			ch := startApp(t, app)
			sub, err := FromDeclarative(components.Subscription{PubsubName: "ps", Topic: "orders", Routes: components.Routes{Default: "/orders"}})
			if err != nil {
				t.Fatal(err)
			}
			if tt.deadLetter {
				sub.DeadLetterTopic = "dead"
			}
			var dlq, observed []string
			p := &Processor{Sub: sub, Deliverer: HTTPDeliverer{App: ch}, DeadLetter: func(_ context.Context, m *pubsub.Message, topic string) error {
				dlq = append(dlq, topic)
				return nil
			}, Observe: func(topic, processStatus, status string, _ time.Duration) {
				observed = append(observed, topic+"|"+processStatus+"|"+status)
			}}
			data := envelope(t, nil)
			err = p.Handle(context.Background(), &pubsub.Message{Topic: "orders", Data: data, Metadata: map[string]string{"partitionKey": "k1", "bad\nkey": "x"}})
			if (err == nil) != tt.wantAck {
				t.Errorf("Handle = %v, want ack %v", err, tt.wantAck)
			}
			if (len(dlq) == 1) != tt.wantDLQ {
				t.Errorf("dead letters = %v, want %v", dlq, tt.wantDLQ)
			}
			if want := "orders|" + tt.wantLabels; len(observed) != 1 || observed[0] != want {
				t.Errorf("ingress observed %v, want [%s]", observed, want)
			}
			if len(app.got) != 1 {
				t.Fatalf("app got %d requests", len(app.got))
			}
			r := app.got[0]
			if r.Method != http.MethodPost || r.URL.Path != "/orders" {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			for h, want := range map[string]string{
				"Content-Type": "application/cloudevents+json", "Pubsubname": "ps", "Partitionkey": "k1",
				"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Dapr-Api-Token": "app-token",
			} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			if string(app.bodies[0]) != string(data) {
				t.Errorf("body = %s, want the envelope as published", app.bodies[0])
			}
		})
	}
}

func TestProcessorSpecialCases(t *testing.T) {
	app := &fakeApp{status: 200}
	ch := startApp(t, app)
	newProc := func(sub components.Subscription) (*Processor, *[]string) {
		s, err := FromDeclarative(sub)
		if err != nil {
			t.Fatal(err)
		}
		var dlq []string
		return &Processor{Sub: s, Deliverer: HTTPDeliverer{App: ch}, DeadLetter: func(_ context.Context, m *pubsub.Message, topic string) error {
			dlq = append(dlq, topic)
			return nil
		}}, &dlq
	}

	// Expired: acknowledged, dead-lettered, not delivered.
	p, dlq := newProc(components.Subscription{PubsubName: "ps", Topic: "t", DeadLetterTopic: "dead", Routes: components.Routes{Default: "/t"}})
	p.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if err := p.Handle(context.Background(), &pubsub.Message{Topic: "t", Data: envelope(t, map[string]string{"ttlInSeconds": "60"})}); err != nil {
		t.Errorf("expired: %v", err)
	}
	if len(*dlq) != 1 || len(app.got) != 0 {
		t.Errorf("expired: dlq %v, app got %d", *dlq, len(app.got))
	}

	// Not a cloud event: redelivered without dead letter topic.
	p, _ = newProc(components.Subscription{PubsubName: "ps", Topic: "t", Routes: components.Routes{Default: "/t"}})
	if err := p.Handle(context.Background(), &pubsub.Message{Topic: "t", Data: []byte("raw")}); err == nil {
		t.Error("garbage without dead letter topic must be redelivered")
	}

	// Raw payload: wrapped with data_base64 and delivered as a cloud event.
	p, _ = newProc(components.Subscription{PubsubName: "ps", Topic: "t", Metadata: map[string]string{"rawPayload": "true"}, Routes: components.Routes{Default: "/raw"}})
	if err := p.Handle(context.Background(), &pubsub.Message{Topic: "t", Data: []byte("raw")}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(app.bodies[len(app.bodies)-1], &got); err != nil || got["data_base64"] != "cmF3" || got["topic"] != "t" {
		t.Errorf("raw delivery = %s (%v)", app.bodies[len(app.bodies)-1], err)
	}

	// No matching rule: acknowledged, dead-lettered, not delivered.
	p, dlq = newProc(components.Subscription{PubsubName: "ps", Topic: "t", DeadLetterTopic: "dead", Routes: components.Routes{Rules: []components.Rule{{Match: `event.type == "nope"`, Path: "/n"}}}})
	n := len(app.got)
	if err := p.Handle(context.Background(), &pubsub.Message{Topic: "t", Data: envelope(t, nil)}); err != nil || len(*dlq) != 1 || len(app.got) != n {
		t.Errorf("unrouted: err %v dlq %v delivered %d", err, *dlq, len(app.got)-n)
	}

	// DROP whose dead-lettering fails is redelivered, not lost.
	app.body = `{"status":"DROP"}`
	p, _ = newProc(components.Subscription{PubsubName: "ps", Topic: "t", DeadLetterTopic: "dead", Routes: components.Routes{Default: "/t"}})
	p.DeadLetter = func(context.Context, *pubsub.Message, string) error { return errors.New("broker down") }
	if err := p.Handle(context.Background(), &pubsub.Message{Topic: "t", Data: envelope(t, nil)}); err == nil {
		t.Error("failed dead-lettering must redeliver")
	}
}

func TestDiscoverHTTP(t *testing.T) {
	app := &fakeApp{subsRaw: `[
		{"pubsubname":"ps","topic":"a","route":"/a","metadata":{"rawPayload":"true"}},
		{"pubsubname":"ps","topic":"b","routes":{"rules":[{"match":"event.type == \"x\"","path":"/x"}],"default":"/b"},"deadLetterTopic":"dl","bulkSubscribe":{"enabled":true,"maxMessagesCount":10}},
		{"pubsubname":"ps","topic":"noroute"},
		{"pubsubname":"ps","topic":"badrule","routes":{"rules":[{"match":"event.type ==","path":"/x"}]}}
	]`}
	ch := startApp(t, app)
	subs, err := DiscoverHTTP(context.Background(), ch, "myapp", RetryPolicy{Attempts: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 {
		t.Fatalf("subs = %d, want 2 (no route and bad rule skipped)", len(subs))
	}
	if app.subsAppID != "myapp" {
		t.Errorf("Dapr-App-Id = %q, want myapp", app.subsAppID)
	}
	if subs[0].Topic != "a" || subs[0].Rules[0].Path != "/a" || !subs[0].RawPayload() || subs[0].Kind != Programmatic {
		t.Errorf("sub a = %+v", subs[0])
	}
	b := subs[1]
	if len(b.Rules) != 2 || b.Rules[1].Path != "/b" || b.DeadLetterTopic != "dl" || !b.BulkSubscribe.Enabled {
		t.Errorf("sub b = %+v", b)
	}

	app.subsRaw = ""
	subs, err = DiscoverHTTP(context.Background(), ch, "myapp", RetryPolicy{Attempts: 1}, nil)
	if err != nil || len(subs) != 0 {
		t.Errorf("404: %v %v", subs, err)
	}
	app.subsRaw = `{"not":"an array"}`
	if _, err := DiscoverHTTP(context.Background(), ch, "myapp", RetryPolicy{Attempts: 1}, nil); err == nil {
		t.Error("bad JSON must fail")
	}

	// A closed port is retried, then reported.
	dead, _ := appchannel.NewHTTP(appchannel.HTTPConfig{Port: 1})
	start := time.Now()
	if _, err := DiscoverHTTP(context.Background(), dead, "myapp", RetryPolicy{Attempts: 3, Backoff: 10 * time.Millisecond}, nil); err == nil {
		t.Error("unreachable app must fail")
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Error("should have backed off between attempts")
	}
}

func TestIngressStatus(t *testing.T) {
	for st, want := range map[Status]string{
		Success: "success|success", Retry: "retry|retry", Drop: "drop|success", Discard: "drop|drop",
	} {
		if ps, s := IngressStatus(st); ps+"|"+s != want {
			t.Errorf("IngressStatus(%s) = %s|%s, want %s", st, ps, s, want)
		}
	}
}
