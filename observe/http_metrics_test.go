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
	tests := []struct {
		name     string
		opts     HTTPMetricsOptions
		requests [][2]string // method, path
		want     map[string]float64
	}{
		{
			name:     "no path label by default",
			requests: [][2]string{{"GET", "/v1.0/state/s/k1"}, {"GET", "/v1.0/state/s/k2"}, {"POST", "/v1.0/invoke/b/method/x"}, {"GET", "/v1.0/state/s/missing"}},
			want: map[string]float64{
				"app_id=app,method=GET,status=200":  2,
				"app_id=app,method=POST,status=200": 1,
				"app_id=app,method=GET,status=404":  1,
			},
		},
		{
			name:     "increased cardinality labels the path",
			opts:     HTTPMetricsOptions{IncreasedCardinality: true},
			requests: [][2]string{{"GET", "/v1.0/state/s/k1"}, {"GET", "/v1.0/state/s/k1"}, {"GET", "/v1.0/state/s/k2"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/state/s/k1,status=200": 2,
				"app_id=app,method=GET,path=/v1.0/state/s/k2,status=200": 1,
			},
		},
		{
			name:     "path matching without increased cardinality",
			opts:     HTTPMetricsOptions{PathMatching: []string{"/v1.0/state/{store}/{key}"}},
			requests: [][2]string{{"GET", "/v1.0/state/s/k1"}, {"GET", "/v1.0/state/s/k2"}, {"GET", "/v1.0/invoke/b/method/x"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=/v1.0/state/{store}/{key},status=200": 2,
				"app_id=app,method=GET,path=_,status=200":                         1,
			},
		},
		{
			name:     "path matching with increased cardinality keeps unmatched paths",
			opts:     HTTPMetricsOptions{IncreasedCardinality: true, PathMatching: []string{"GET /orders/{id}"}},
			requests: [][2]string{{"GET", "/orders/1"}, {"GET", "/orders/2"}, {"GET", "/other"}},
			want: map[string]float64{
				"app_id=app,method=GET,path=GET /orders/{id},status=200": 2,
				"app_id=app,method=GET,path=/other,status=200":           1,
			},
		},
		{
			name:     "exclude verbs and odd methods",
			opts:     HTTPMetricsOptions{ExcludeVerbs: true},
			requests: [][2]string{{"GET", "/a"}, {"BREW", "/a"}},
			want:     map[string]float64{"app_id=app,method=,status=200": 2},
		},
		{
			name:     "unknown verbs share one label",
			requests: [][2]string{{"BREW", "/a"}, {"PROPFIND", "/a"}},
			want:     map[string]float64{"app_id=app,method=_other,status=200": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, MetricsOptions{HTTP: tt.opts})
			h := m.HTTPMiddleware(statusHandler())
			for _, r := range tt.requests {
				serve(h, r[0], r[1], "")
			}
			for _, name := range []string{"dapr_http_server_request_count", "dapr_http_server_latency"} {
				got := series(t, reg, name)
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("%s = %v, want %v", name, got, tt.want)
				}
			}
		})
	}
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
		{"default: paths are not labels", MetricsOptions{}, 1},
		{"path matching: unmatched share _", MetricsOptions{HTTP: HTTPMetricsOptions{PathMatching: []string{"/v1.0/state/{s}"}}}, 1},
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
