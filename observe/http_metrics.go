package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedPath labels requests no pathMatching pattern matched (Dapr's
// placeholder).
const unmatchedPath = "_"

type httpKey struct {
	method string
	status int
	path   string
}

type httpChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

type httpMetrics struct {
	count     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	reqBytes  *prometheus.HistogramVec
	respBytes *prometheus.HistogramVec
	reqObs    prometheus.Observer
	respObs   prometheus.Observer

	appID        string
	withPath     bool
	increased    bool
	excludeVerbs bool
	mux          *http.ServeMux // nil without pathMatching
	cache        *boundCache[httpKey, httpChildren]
}

func newHTTPMetrics(o MetricsOptions, buckets []float64, maxSeries int) (*httpMetrics, error) {
	h := &httpMetrics{
		appID:        o.AppID,
		increased:    o.HTTP.IncreasedCardinality,
		excludeVerbs: o.HTTP.ExcludeVerbs,
	}
	if len(o.HTTP.PathMatching) > 0 {
		mux, err := validatePatterns(o.HTTP.PathMatching)
		if err != nil {
			return nil, err
		}
		h.mux = mux
	}
	h.withPath = h.increased || h.mux != nil
	labels := []string{"app_id", "method", "status"}
	if h.withPath {
		labels = []string{"app_id", "method", "path", "status"}
	}
	h.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dapr_http_server_request_count", Help: "Number of HTTP requests completed by the Dapr HTTP API.",
	}, labels)
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dapr_http_server_latency", Help: "Latency of HTTP requests to the Dapr HTTP API, in milliseconds.", Buckets: buckets,
	}, labels)
	h.reqBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dapr_http_server_request_bytes", Help: "Size of HTTP request bodies (Content-Length) received by the Dapr HTTP API.", Buckets: defaultSizeBuckets,
	}, []string{"app_id"})
	h.respBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dapr_http_server_response_bytes", Help: "Size of HTTP response bodies sent by the Dapr HTTP API.", Buckets: defaultSizeBuckets,
	}, []string{"app_id"})
	h.reqObs = h.reqBytes.WithLabelValues(o.AppID)
	h.respObs = h.respBytes.WithLabelValues(o.AppID)
	h.cache = newBoundCache(maxSeries, h.bind, func() httpChildren {
		return h.bind(httpKey{method: overflowLabel, path: overflowLabel})
	})
	return h, nil
}

func (h *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.count, h.latency, h.reqBytes, h.respBytes}
}

func (h *httpMetrics) bind(k httpKey) httpChildren {
	status := strconv.Itoa(k.status)
	if k.status == 0 {
		status = overflowLabel
	}
	vals := []string{h.appID, k.method, status}
	if h.withPath {
		vals = []string{h.appID, k.method, k.path, status}
	}
	return httpChildren{count: h.count.WithLabelValues(vals...), latency: h.latency.WithLabelValues(vals...)}
}

// verb bounds the method label to the standard methods.
func verb(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return overflowLabel
}

// pathLabel is the path label of r, "" when paths are not labels.
func (h *httpMetrics) pathLabel(r *http.Request) string {
	if !h.withPath {
		return ""
	}
	if h.mux != nil {
		if _, pattern := h.mux.Handler(r); pattern != "" {
			return pattern
		}
		if !h.increased {
			return unmatchedPath
		}
	}
	return r.URL.Path
}

func (h *httpMetrics) record(r *http.Request, status int, written int64, elapsed time.Duration) {
	k := httpKey{status: status, path: h.pathLabel(r)}
	if !h.excludeVerbs {
		k.method = verb(r.Method)
	}
	c := h.cache.get(k)
	c.count.Inc()
	c.latency.Observe(float64(elapsed) / float64(time.Millisecond))
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
