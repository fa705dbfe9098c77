package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpClientMetrics are Dapr's dapr_http_client_* metrics: the sidecar's
// calls to its app over the HTTP app channel (service invocation, /dapr/config,
// /dapr/subscribe, deliveries). Their path label follows the same rules as
// the server's (pathLabeler.clientLabel).
type httpClientMetrics struct {
	sent      *byteHistogramVec
	received  *byteHistogramVec
	latency   *prometheus.HistogramVec
	completed *prometheus.CounterVec
	recvObs   prometheus.Observer

	appID string
	paths pathLabeler
	verb  func(string) string
	cache *boundCache[httpKey, httpClientChildren]
}

type httpClientChildren struct {
	sent      prometheus.Observer // status label empty: recorded before the answer
	latency   prometheus.Observer
	completed prometheus.Counter
}

func newHTTPClientMetrics(appID string, paths pathLabeler, verb func(string) string, buckets []float64, maxSeries int) *httpClientMetrics {
	c := &httpClientMetrics{appID: appID, paths: paths, verb: verb}
	c.sent = newByteHistogramVec("dapr_http_client_sent_bytes", "Total bytes sent in request body (not including headers)", httpLabels)
	c.received = newByteHistogramVec("dapr_http_client_received_bytes", "Total bytes received in response bodies (not including headers but including error responses with bodies)", []string{"app_id"})
	c.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dapr_http_client_roundtrip_latency", Help: "Time between first byte of request headers sent to last byte of response received, or terminal error", Buckets: buckets,
	}, httpLabels)
	c.completed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dapr_http_client_completed_count", Help: "Count of completed requests",
	}, httpLabels)
	c.recvObs = c.received.WithLabelValues(appID)
	c.cache = newBoundCache(maxSeries, c.bind, func() httpClientChildren {
		return c.bind(httpKey{method: overflowLabel, path: overflowLabel})
	})
	return c
}

func (c *httpClientMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.sent, c.received, c.latency, c.completed}
}

func (c *httpClientMetrics) bind(k httpKey) httpClientChildren {
	status := strconv.Itoa(k.status)
	if k.status == 0 {
		status = overflowLabel
	}
	return httpClientChildren{
		sent:      c.sent.WithLabelValues(c.appID, k.method, k.path, ""),
		latency:   c.latency.WithLabelValues(c.appID, k.method, k.path, status),
		completed: c.completed.WithLabelValues(c.appID, k.method, k.path, status),
	}
}

func (c *httpClientMetrics) record(req *http.Request, resp *http.Response, err error, elapsed time.Duration) {
	status, received := 0, int64(0)
	if err == nil {
		status, received = resp.StatusCode, max(resp.ContentLength, 0)
	}
	c.recordCall(req.Method, req.URL.Path, req.ContentLength, status, received, err, elapsed)
}

// recordCall records one call: its method, URL path and request body size,
// the response's status and Content-Length (unused when err is not nil:
// the call counts as a 500 that received nothing) and the time to the
// response's headers.
func (c *httpClientMetrics) recordCall(method, path string, sent int64, status int, received int64, err error, elapsed time.Duration) {
	k := httpKey{method: c.verb(method), path: c.paths.clientLabel(path), status: http.StatusInternalServerError}
	if err == nil {
		k.status = status
	} else {
		received = 0
	}
	ch := c.cache.get(k)
	ch.sent.Observe(float64(max(sent, 0)))
	ch.latency.Observe(float64(elapsed) / float64(time.Millisecond))
	ch.completed.Inc()
	c.recvObs.Observe(float64(received))
}

// AppTransport wraps the HTTP app channel's transport to record
// dapr_http_client_* for each call to the app. The latency is to the
// response's headers: the body streams on to the caller.
func (m *Metrics) AppTransport(next http.RoundTripper) http.RoundTripper {
	if m == nil {
		return next
	}
	return &metricsTransport{c: m.http.client, next: next}
}

// AppCall records dapr_http_client_* for a call to the app that the HTTP
// app channel wrote without an http.Request (an appchannel.CallRecorder):
// the figures AppTransport takes from the request and its response.
func (m *Metrics) AppCall(method, path string, sent int64, status int, received int64, err error, elapsed time.Duration) {
	m.http.client.recordCall(method, path, sent, status, received, err, elapsed)
}

type metricsTransport struct {
	c    *httpClientMetrics
	next http.RoundTripper
}

func (mt *metricsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := mt.next.RoundTrip(req)
	mt.c.record(req, resp, err, time.Since(start))
	return resp, err
}
