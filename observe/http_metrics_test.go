package observe

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func statusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusOK
		if strings.HasSuffix(r.URL.Path, "/missing") {
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "hello")
	})
}

func serve(h http.Handler, method, path string, body string) int {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestHTTPMetricsLabels(t *testing.T) {
	// The expectations are those of Dapr's integration suite
	// (tests/integration/suite/daprd/metrics/http).
	tests := []struct {
		name     string
		opts     HTTPMetricsOptions
		requests [][2]string // method, path
		want     map[string]float64
	}{
		{
			name:     "low cardinality: empty path label",
			requests: [][2]string{{"GET", "/v1.0/state/s/k1"}, {"GET", "/v1.0/state/s/k2"}, {"POST", "/v1.0/invoke/b/method/x"}, {"GET", "/v1.0/state/s/missing"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=,status=200":  2,
				"app_id=app,method=POST,path=,status=200": 1,
				"app_id=app,method=GET,path=,status=404":  1,
			},
		},
		{
			name: "increased cardinality: keys and IDs are left out",
			opts: HTTPMetricsOptions{IncreasedCardinality: true},
			requests: [][2]string{
				{"GET", "/v1.0/state/s/k1"}, {"POST", "/v1.0/state/s"}, {"GET", "/v1.0/secrets/vault/db"},
				{"POST", "/v1.0/actors/T/a1/method/foo"}, {"POST", "/v1.0/actors/T/a2/method/bar"},
				{"GET", "/v1.0/invoke/myapp/method/hi"}, {"GET", "/v1.0/healthz"},
			},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/state/s,status=200":                1,
				"app_id=app,method=POST,path=/v1.0/state/s,status=200":               1,
				"app_id=app,method=GET,path=/v1.0/secrets/vault,status=200":          1,
				"app_id=app,method=POST,path=/v1.0/actors/T/{id}/method,status=200":  2,
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/hi,status=200": 1,
				"app_id=app,method=GET,path=/v1.0/healthz,status=200":                1,
			},
		},
		{
			name: "path matching, low cardinality: unmatched paths share the empty label",
			opts: HTTPMetricsOptions{PathMatching: []string{
				"/v1.0/invoke/myapp/method/basket", "/v1.0/invoke/myapp/method/orders/1234",
				"/v1.0/invoke/myapp/method/orders/{orderID}", "/v1.0/invoke/myapp/method/orders", "/v1.0/state/mystore/{key}",
			}},
			requests: [][2]string{
				{"GET", "/v1.0/state/mystore/foo"}, {"POST", "/v1.0/state/mystore"},
				{"GET", "/v1.0/invoke/myapp/method/orders/1111"}, {"GET", "/v1.0/invoke/myapp/method/orders/1234"},
				{"GET", "/v1.0/invoke/myapp/method/orders"}, {"GET", "/v1.0/invoke/myapp/method/items/1234"},
				{"GET", "//v1.0/invoke/myapp/method/orders/9999"},
			},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/state/mystore/{key},status=200":                  1,
				"app_id=app,method=POST,path=,status=200":                                          1,
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/orders/{orderID},status=200": 2,
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/orders/1234,status=200":      1,
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/orders,status=200":           1,
				"app_id=app,method=GET,path=,status=200":                                           1,
			},
		},
		{
			name:     "path matching, high cardinality: unmatched paths keep theirs",
			opts:     HTTPMetricsOptions{IncreasedCardinality: true, PathMatching: []string{"/v1.0/invoke/myapp/method/orders/{orderID}"}},
			requests: [][2]string{{"GET", "/v1.0/invoke/myapp/method/orders/1"}, {"GET", "/v1.0/invoke/myapp/method/items/123"}, {"GET", "/v1.0/state/s/k"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/orders/{orderID},status=200": 1,
				"app_id=app,method=GET,path=/v1.0/invoke/myapp/method/items/123,status=200":        1,
				"app_id=app,method=GET,path=/v1.0/state/s,status=200":                              1,
			},
		},
		{
			name:     "path matching registers app patterns under invoke",
			opts:     HTTPMetricsOptions{PathMatching: []string{"/orders/{orderID}"}},
			requests: [][2]string{{"GET", "/v1.0/invoke/myapp/method/orders/1234"}, {"GET", "/v1.0/invoke/other/method/orders/5678"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/invoke/{app_id}/method/orders/{orderID},status=200": 2,
			},
		},
		{
			name:     "exclude verbs",
			opts:     HTTPMetricsOptions{ExcludeVerbs: true, IncreasedCardinality: true},
			requests: [][2]string{{"GET", "/a"}, {"BREW", "/a"}},
			want:     map[string]float64{"app_id=app,method=,path=/a,status=200": 2},
		},
		{
			name:     "unknown verbs share one label",
			requests: [][2]string{{"BREW", "/a"}, {"PROPFIND", "/a"}},
			want:     map[string]float64{"app_id=app,method=UNKNOWN,path=,status=200": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, MetricsOptions{HTTP: tt.opts})
			h := m.HTTPMiddleware(statusHandler())
			for _, r := range tt.requests {
				serveRaw(h, r[0], r[1])
			}
			names := []string{"dapr_http_server_request_count", "dapr_http_server_latency"}
			if tt.opts.IncreasedCardinality {
				names = append(names, "dapr_http_server_response_count")
			} else if got := series(t, reg, "dapr_http_server_response_count"); len(got) != 0 {
				t.Errorf("dapr_http_server_response_count without increased cardinality: %v", got)
			}
			for _, name := range names {
				got := series(t, reg, name)
				if !equalSeries(got, tt.want) {
					t.Errorf("%s = %v, want %v", name, got, tt.want)
				}
			}
		})
	}
}

// serveRaw serves a request whose path is taken as is ("//a" included).
func serveRaw(h http.Handler, method, path string) {
	r := httptest.NewRequest(method, "/", nil)
	r.URL.Path = path
	h.ServeHTTP(httptest.NewRecorder(), r)
}

func TestLegacyPathLabel(t *testing.T) {
	tests := map[string]string{
		"":                                      "",
		"/v1.0/healthz":                         "/v1.0/healthz",
		"v1.0//state/s/k":                       "/v1.0/state/s",
		"/v1.0/secrets/vault/key":               "/v1.0/secrets/vault",
		"/v1.0/state/s/":                        "/v1.0/state/s",
		"/v1.0/state/":                          "/v1.0/state/",
		"/v1.0/state":                           "/v1.0/state",
		"/v1.0-alpha1/state/s/k/x":              "/v1.0-alpha1/state/s",
		"/actors/state/id1/x":                   "actors/state/{id}/x", // as Dapr: no leading slash
		"/v1.0/actors/T/id1/method/m":           "/v1.0/actors/T/{id}/method",
		"/v1.0/actors/T":                        "/v1.0/actors/T",
		"/v1.0/workflows/dapr/wf1":              "/v1.0/workflows/dapr/{instanceId}",
		"/v1.0/workflows/dapr/MyWF/start":       "/v1.0/workflows/dapr/MyWF/start",
		"/v1.0/workflows/dapr/i1/raiseEvent/ev": "/v1.0/workflows/dapr/{instanceId}/raiseEvent/{eventName}",
		"/v1.0/workflows/dapr/i1/pause":         "/v1.0/workflows/dapr/{instanceId}/pause",
		"/v1.0/invoke/app/method/a/b/c":         "/v1.0/invoke/app/method/a/b/c",
	}
	for in, want := range tests {
		if got := legacyPathLabel(in); got != want {
			t.Errorf("legacyPathLabel(%q) = %q, want %q", in, got, want)
		}
	}
	// An invocation's label is its path, a state or secret operation's a
	// part of it: found without allocating.
	for _, p := range []string{"/v1.0/invoke/app/method/a/b/c", "/v1.0/state/s/k", "/v1.0/state/s", "/v1.0/secrets/v/k"} {
		if n := testing.AllocsPerRun(100, func() { legacyPathLabel(p) }); n != 0 {
			t.Errorf("legacyPathLabel(%q): %v allocations, want 0", p, n)
		}
	}
}

func TestHTTPClientMetrics(t *testing.T) {
	app := httptest.NewServer(statusHandler())
	defer app.Close()
	tests := []struct {
		name string
		opts HTTPMetricsOptions
		want map[string]float64
	}{
		{"low cardinality keeps only the static paths", HTTPMetricsOptions{}, map[string]float64{
			"app_id=app,method=GET,path=/dapr/config,status=200": 1,
			"app_id=app,method=GET,path=,status=200":             1,
			"app_id=app,method=POST,path=,status=404":            1,
		}},
		{"increased cardinality", HTTPMetricsOptions{IncreasedCardinality: true}, map[string]float64{
			"app_id=app,method=GET,path=/dapr/config,status=200": 1,
			"app_id=app,method=GET,path=/hi,status=200":          1,
			"app_id=app,method=POST,path=/x/missing,status=404":  1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, MetricsOptions{HTTP: tt.opts})
			client := &http.Client{Transport: m.AppTransport(http.DefaultTransport)}
			for _, c := range [][2]string{{"GET", "/dapr/config"}, {"GET", "/hi"}, {"POST", "/x/missing"}} {
				req, _ := http.NewRequest(c[0], app.URL+c[1], strings.NewReader("body"))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			for _, name := range []string{"dapr_http_client_completed_count", "dapr_http_client_roundtrip_latency"} {
				if got := series(t, reg, name); !equalSeries(got, tt.want) {
					t.Errorf("%s = %v, want %v", name, got, tt.want)
				}
			}
		})
	}
	t.Run("a failed call counts as 500", func(t *testing.T) {
		m, reg := newTestMetrics(t, MetricsOptions{})
		client := &http.Client{Transport: m.AppTransport(http.DefaultTransport)}
		if _, err := client.Get("http://127.0.0.1:1/dapr/config"); err == nil {
			t.Fatal("call to a closed port succeeded")
		}
		want := map[string]float64{"app_id=app,method=GET,path=/dapr/config,status=500": 1}
		if got := series(t, reg, "dapr_http_client_completed_count"); !equalSeries(got, want) {
			t.Errorf("completed = %v, want %v", got, want)
		}
	})
}

func TestHTTPMetricsBytes(t *testing.T) {
	m, reg := newTestMetrics(t, MetricsOptions{})
	h := m.HTTPMiddleware(statusHandler())
	serve(h, "POST", "/x", strings.Repeat("a", 3000))
	serve(h, "POST", "/x", "")
	mfs, _ := reg.Gather()
	sums := map[string]float64{}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			if mm.Histogram != nil {
				sums[mf.GetName()] = mm.GetHistogram().GetSampleSum()
			}
		}
	}
	if sums["dapr_http_server_request_bytes"] != 3000 {
		t.Errorf("request bytes sum = %v, want 3000", sums["dapr_http_server_request_bytes"])
	}
	if sums["dapr_http_server_response_bytes"] != 10 {
		t.Errorf("response bytes sum = %v, want 10 (2 x hello)", sums["dapr_http_server_response_bytes"])
	}
}

func TestHTTPMetricsBoundedCardinality(t *testing.T) {
	tests := []struct {
		name string
		opts MetricsOptions
		want int
	}{
		{"low cardinality: paths are not labels", MetricsOptions{}, 1},
		{"path matching: unmatched share the empty label", MetricsOptions{HTTP: HTTPMetricsOptions{PathMatching: []string{"/v1.0/state/{s}"}}}, 1},
		{"increased cardinality is capped", MetricsOptions{HTTP: HTTPMetricsOptions{IncreasedCardinality: true}, MaxSeries: 100}, 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, tt.opts)
			h := m.HTTPMiddleware(statusHandler())
			for i := range 1000 {
				serve(h, "GET", fmt.Sprintf("/v1.0/invoke/app/method/order/%d", i), "")
			}
			got := series(t, reg, "dapr_http_server_request_count")
			if len(got) != tt.want {
				t.Fatalf("%d series, want %d", len(got), tt.want)
			}
			total := 0.0
			for _, v := range got {
				total += v
			}
			if total != 1000 {
				t.Errorf("counted %v requests, want 1000", total)
			}
		})
	}
}

func TestHTTPMetricsBadPattern(t *testing.T) {
	_, err := NewMetrics(nil, MetricsOptions{})
	if err == nil {
		t.Error("nil registry accepted")
	}
	_, err = newMetricsErr(MetricsOptions{HTTP: HTTPMetricsOptions{PathMatching: []string{"/a/{x"}}})
	if err == nil || !strings.Contains(err.Error(), "pathMatching") {
		t.Errorf("bad pattern: err = %v", err)
	}
}

func TestRecorderFlushAndUnwrap(t *testing.T) {
	m, _ := newTestMetrics(t, MetricsOptions{})
	var flushed, unwrapped bool
	h := m.HTTPMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flushed = w.(http.Flusher)
		_, unwrapped = w.(interface{ Unwrap() http.ResponseWriter })
		_ = http.NewResponseController(w).Flush()
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if !flushed || !unwrapped || !w.Flushed {
		t.Errorf("flusher=%v unwrap=%v flushed=%v", flushed, unwrapped, w.Flushed)
	}
}
