package scaler

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/scaler/externalscaler"
)

func n(v int64) *int64 { return &v }

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name    string
		md      map[string]string
		want    Query
		wantErr bool
	}{
		{"defaults", map[string]string{"appId": "orders"}, Query{AppID: "orders", Namespace: "ns", Metric: MetricPending, Target: 10}, false},
		{"backlog names", map[string]string{"appId": "orders", "topic": "t", "targetBacklog": "5", "activationBacklog": "2", "namespace": "other"},
			Query{AppID: "orders", Namespace: "other", Metric: MetricPending, Topic: "t", Target: 5, Activation: 2}, false},
		{"invocations", map[string]string{"appId": "a", "metric": "invocations", "targetValue": "1.5"}, Query{AppID: "a", Namespace: "ns", Metric: MetricInvocations, Target: 1.5}, false},
		{"no app", map[string]string{}, Query{}, true},
		{"bad metric", map[string]string{"appId": "a", "metric": "cpu"}, Query{}, true},
		{"topic with actors", map[string]string{"appId": "a", "metric": "actors", "topic": "t"}, Query{}, true},
		{"zero target", map[string]string{"appId": "a", "targetBacklog": "0"}, Query{}, true},
		{"bad number", map[string]string{"appId": "a", "activationValue": "-1"}, Query{}, true},
		{"NaN", map[string]string{"appId": "a", "targetValue": "NaN"}, Query{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQuery(tt.md, "ns")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add("orders", "pending", "t", "5", "0")
	f.Add("a", "actors", "", "1e3", "")
	f.Add("", "x", "", "-1", "NaN")
	f.Fuzz(func(t *testing.T, app, metric, topic, target, activation string) {
		q, err := ParseQuery(map[string]string{"appId": app, "metric": metric, "topic": topic, "targetValue": target, "activationValue": activation}, "ns")
		if err != nil {
			return
		}
		if q.AppID == "" || q.Target <= 0 || q.Activation < 0 {
			t.Fatalf("accepted %+v", q)
		}
		for _, r := range q.MetricName() {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				t.Fatalf("metric name %q has %q", q.MetricName(), r)
			}
		}
	})
}

func TestValue(t *testing.T) {
	replica := func(inv, actors, inflight int64, backlog *int64) loadreport.Report {
		r := loadreport.Report{AppID: "a", InvocationsInFlight: inv, ActiveActors: actors, Subscriptions: []loadreport.Subscription{
			{PubsubName: "mem", Topic: "t2", InFlight: inflight},
		}}
		if backlog != nil {
			r.Subscriptions = append(r.Subscriptions, loadreport.Subscription{PubsubName: "redis", Topic: "t1", Backlog: backlog, Unacked: n(2), InFlight: inflight})
		}
		return r
	}
	reports := []loadreport.Report{replica(1, 2, 3, n(10)), replica(4, 5, 1, n(8)), replica(0, 0, 2, nil)}
	tests := []struct {
		q    Query
		want float64
	}{
		// redis/t1: the group's figure, the largest (10+2); mem/t2: 3+1+2 in flight.
		{Query{Metric: MetricPending}, 12 + 6},
		{Query{Metric: MetricPending, Topic: "t1"}, 12},
		{Query{Metric: MetricPending, PubsubName: "mem"}, 6},
		{Query{Metric: MetricPending, Topic: "nope"}, 0},
		{Query{Metric: MetricInvocations}, 5},
		{Query{Metric: MetricActors}, 7},
	}
	for _, tt := range tests {
		if got := tt.q.Value(reports); got != tt.want {
			t.Errorf("%+v: Value = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := (Query{Metric: MetricPending}).Value(nil); got != 0 {
		t.Errorf("no replicas: %v, want 0", got)
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add(`{"id":"a","extended":{"tandem.load":"{\"appId\":\"a\",\"subscriptions\":[]}"}}`)
	f.Add(`{"id":"a","extended":{}}`)
	f.Add(`{"extended":{"tandem.load":"{"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := parseMetadata([]byte(body))
		if err == nil && r.AppID == "" {
			t.Fatalf("accepted a report with no app ID from %q", body)
		}
	})
}

// sidecar is a real HTTP server answering GET /v1.0/metadata with the
// report it holds.
type sidecar struct {
	mu  sync.Mutex
	rep loadreport.Report
	srv *httptest.Server
}

func newSidecar(t *testing.T, rep loadreport.Report) *sidecar {
	s := &sidecar{rep: rep}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.0/metadata" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		body := map[string]any{"id": s.rep.AppID, "extended": map[string]string{loadreport.ExtendedKey: s.rep.Marshal()}}
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sidecar) set(f func(*loadreport.Report)) {
	s.mu.Lock()
	f(&s.rep)
	s.mu.Unlock()
}

func TestServer(t *testing.T) {
	a1 := newSidecar(t, loadreport.Report{AppID: "orders", Subscriptions: []loadreport.Subscription{{PubsubName: "redis", Topic: "t", Backlog: n(0), Unacked: n(0)}}})
	a2 := newSidecar(t, loadreport.Report{AppID: "orders", InvocationsInFlight: 2})
	other := newSidecar(t, loadreport.Report{AppID: "billing", InvocationsInFlight: 100})
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	reader := &Reader{Finder: Static(a1.srv.URL, a2.srv.URL, other.srv.URL)}
	srv, err := New(Options{Reports: reader.Reports, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := externalscaler.NewExternalScalerClient(conn)
	ref := &externalscaler.ScaledObjectRef{Name: "orders", Namespace: "default", ScalerMetadata: map[string]string{"appId": "orders", "topic": "t", "targetBacklog": "4"}}

	spec, err := c.GetMetricSpec(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if s := spec.GetMetricSpecs()[0]; s.GetMetricName() != "tandem-pending-orders-t" || s.GetTargetSizeFloat() != 4 || s.GetTargetSize() != 4 {
		t.Errorf("GetMetricSpec = %v", s)
	}
	if r, err := c.IsActive(t.Context(), ref); err != nil || r.GetResult() {
		t.Fatalf("IsActive with no backlog = %v, %v; want false", r, err)
	}
	stream, err := c.StreamIsActive(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive first = %v, %v; want false", r, err)
	}
	a1.set(func(r *loadreport.Report) { r.Subscriptions[0].Backlog = n(7) })
	if r, err := stream.Recv(); err != nil || !r.GetResult() {
		t.Fatalf("StreamIsActive after a backlog = %v, %v; want true", r, err)
	}
	m, err := c.GetMetrics(t.Context(), &externalscaler.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "s0-tandem-pending-orders-t"})
	if err != nil {
		t.Fatal(err)
	}
	if v := m.GetMetricValues()[0]; v.GetMetricValueFloat() != 7 || v.GetMetricValue() != 7 || v.GetMetricName() != "s0-tandem-pending-orders-t" {
		t.Errorf("GetMetrics = %v, want 7", v)
	}
	a1.set(func(r *loadreport.Report) { r.Subscriptions[0].Backlog = n(0) })
	if r, err := stream.Recv(); err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive after draining = %v, %v; want false", r, err)
	}

	// Only the app's own sidecars count.
	inv := &externalscaler.ScaledObjectRef{Namespace: "default", ScalerMetadata: map[string]string{"appId": "orders", "metric": "invocations"}}
	if m, err := c.GetMetrics(t.Context(), &externalscaler.GetMetricsRequest{ScaledObjectRef: inv}); err != nil || m.GetMetricValues()[0].GetMetricValueFloat() != 2 {
		t.Errorf("invocations = %v, %v; want 2", m, err)
	}
	if _, err := c.IsActive(t.Context(), &externalscaler.ScaledObjectRef{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("IsActive with no appId: %v, want InvalidArgument", err)
	}

	// No sidecar answering is an error, not "inactive".
	deadSrv, err := New(Options{Reports: (&Reader{Finder: Static(dead.URL)}).Reports})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deadSrv.IsActive(t.Context(), ref); status.Code(err) != codes.Unavailable {
		t.Errorf("IsActive with no sidecar answering: %v, want Unavailable", err)
	}
}

func TestDNS(t *testing.T) {
	urls, err := DNS("local{app}", 3501, nil).Find(t.Context(), "host", "default")
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) == 0 {
		t.Fatal("no address for localhost")
	}
	for _, u := range urls {
		if u != "http://127.0.0.1:3501" && u != "http://[::1]:3501" {
			t.Errorf("url %q, want the loopback address at port 3501", u)
		}
	}
}

// TestBrokerWhenNoReplica: with no sidecar reporting, a pending query
// naming its topic is answered by the broker; others stay at 0.
func TestBrokerWhenNoReplica(t *testing.T) {
	var asked []Query
	srv, err := New(Options{
		Reports: func(context.Context, string, string) ([]loadreport.Report, error) { return nil, nil },
		Broker: func(_ context.Context, q Query) (float64, bool, error) {
			asked = append(asked, q)
			return 3, q.Topic != "", nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := &externalscaler.ScaledObjectRef{Namespace: "default", ScalerMetadata: map[string]string{"appId": "orders", "pubsubName": "pubsub", "topic": "t"}}
	if r, err := srv.IsActive(t.Context(), ref); err != nil || !r.GetResult() {
		t.Errorf("IsActive = %v, %v; want true from the broker", r, err)
	}
	m, err := srv.GetMetrics(t.Context(), &externalscaler.GetMetricsRequest{ScaledObjectRef: ref})
	if err != nil || m.GetMetricValues()[0].GetMetricValueFloat() != 3 {
		t.Errorf("GetMetrics = %v, %v; want 3", m, err)
	}
	if len(asked) == 0 || asked[0].AppID != "orders" || asked[0].PubsubName != "pubsub" {
		t.Errorf("broker asked %+v", asked)
	}
	noTopic := &externalscaler.ScaledObjectRef{ScalerMetadata: map[string]string{"appId": "orders"}}
	if r, err := srv.IsActive(t.Context(), noTopic); err != nil || r.GetResult() {
		t.Errorf("IsActive with no topic = %v, %v; want false", r, err)
	}
	actors := &externalscaler.ScaledObjectRef{ScalerMetadata: map[string]string{"appId": "orders", "metric": "actors"}}
	n := len(asked)
	if _, err := srv.IsActive(t.Context(), actors); err != nil || len(asked) != n {
		t.Errorf("actors query: err %v, broker asked %d times more; want not asked", err, len(asked)-n)
	}
}
