package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type httpKey struct {
	method string
	status int
	path   string
}

type httpChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
	// responses is nil unless increasedCardinality is on (Dapr registers
	// dapr_http_server_response_count only then).
	responses prometheus.Counter
}

type httpMetrics struct {
	count     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	responses *prometheus.CounterVec // nil without increasedCardinality
	reqBytes  *byteHistogramVec
	respBytes *byteHistogramVec
	reqObs    prometheus.Observer
	respObs   prometheus.Observer

	appID        string
	paths        pathLabeler
	excludeVerbs bool
	cache        *boundCache[httpKey, httpChildren]

	client *httpClientMetrics
}

// httpLabels are the labels of the per-request HTTP metrics. The path and
// method labels are always there, empty when the configuration leaves them
// out, as Dapr's exporter writes them.
var httpLabels = []string{"app_id", "method", "path", "status"}

func newHTTPMetrics(o MetricsOptions, buckets []float64, maxSeries int) (*httpMetrics, error) {
	matcher, err := newPathMatcher(o.HTTP.PathMatching, o.HTTP.IncreasedCardinality)
	if err != nil {
		return nil, err
	}
	h := &httpMetrics{
		appID:        o.AppID,
		paths:        pathLabeler{legacy: o.HTTP.IncreasedCardinality, matcher: matcher},
		excludeVerbs: o.HTTP.ExcludeVerbs,
	}
	h.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dapr_http_server_request_count", Help: "Count of HTTP requests processed by the server.",
	}, httpLabels)
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dapr_http_server_latency", Help: "HTTP request end-to-end latency in server.", Buckets: buckets,
	}, httpLabels)
	if h.paths.legacy {
		h.responses = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_http_server_response_count", Help: "The number of HTTP responses",
		}, httpLabels)
	}
	h.reqBytes = newByteHistogramVec("dapr_http_server_request_bytes", "HTTP request body size if set as ContentLength (uncompressed) in server.", []string{"app_id"})
	h.respBytes = newByteHistogramVec("dapr_http_server_response_bytes", "HTTP response body size (uncompressed) in server.", []string{"app_id"})
	h.reqObs = h.reqBytes.WithLabelValues(o.AppID)
	h.respObs = h.respBytes.WithLabelValues(o.AppID)
	h.cache = newBoundCache(maxSeries, h.bind, func() httpChildren {
		return h.bind(httpKey{method: overflowLabel, path: overflowLabel})
	})
	h.client = newHTTPClientMetrics(o.AppID, h.paths, h.verb, buckets, maxSeries)
	return h, nil
}

func (h *httpMetrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{h.count, h.latency, h.reqBytes, h.respBytes}
	if h.responses != nil {
		cs = append(cs, h.responses)
	}
	return append(cs, h.client.collectors()...)
}

func (h *httpMetrics) bind(k httpKey) httpChildren {
	status := strconv.Itoa(k.status)
	if k.status == 0 {
		status = overflowLabel
	}
	vals := []string{h.appID, k.method, k.path, status}
	c := httpChildren{count: h.count.WithLabelValues(vals...), latency: h.latency.WithLabelValues(vals...)}
	if h.responses != nil {
		c.responses = h.responses.WithLabelValues(vals...)
	}
	return c
}

// verb is the method label: empty with excludeVerbs, UNKNOWN for a
// method that is not a standard one (as in Dapr), which also bounds it.
func (h *httpMetrics) verb(m string) string {
	if h.excludeVerbs {
		return ""
	}
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "UNKNOWN"
}

func (h *httpMetrics) record(r *http.Request, status int, written int64, elapsed time.Duration) {
	k := httpKey{method: h.verb(r.Method), status: status, path: h.paths.label(h.paths.serverInput(r.URL.Path))}
	c := h.cache.get(k)
	c.count.Inc()
	c.latency.Observe(float64(elapsed) / float64(time.Millisecond))
	if c.responses != nil {
		c.responses.Inc()
	}
	cl := r.ContentLength
	if cl < 0 {
		cl = 0
	}
	h.reqObs.Observe(float64(cl))
	h.respObs.Observe(float64(written))
}

// HTTPMiddleware records dapr_http_server_* for every request to next.
func (m *Metrics) HTTPMiddleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	h := m.http
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec, own := recorderFor(w)
		next.ServeHTTP(rec, r)
		h.record(r, rec.Status(), rec.written, time.Since(start))
		m.errCodes.record(rec.errCode, rec.errCategory)
		if own {
			rec.release()
		}
	})
}
