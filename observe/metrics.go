package observe

import (
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/config"
)

// Dapr's default histogram buckets: latency in milliseconds, sizes in bytes
// (pkg/diagnostics http_monitoring.go).
var (
	defaultLatencyBucketsMS = []float64{1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000}
	defaultSizeBuckets      = []float64{1024, 2048, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824, 4294967296}
)

// MetricsOptions configure Metrics.
type MetricsOptions struct {
	AppID     string
	Namespace string
	// LatencyBucketsMS are the latency histogram bounds in milliseconds
	// (Configuration spec.metrics.latencyDistributionBuckets); empty means
	// Dapr's defaults.
	LatencyBucketsMS []float64
	// HTTP controls the path label of the HTTP server metrics.
	HTTP HTTPMetricsOptions
	// MaxSeries caps the label sets of each metric whose labels come from
	// requests (0: 1000).
	MaxSeries int
	// RecordErrorCodes adds dapr_error_code_total (Configuration
	// spec.metrics.recordErrorCodes).
	RecordErrorCodes bool
}

// HTTPMetricsOptions mirror spec.metrics.http.
type HTTPMetricsOptions struct {
	// IncreasedCardinality fills the path label with the request path,
	// keys and IDs replaced (Dapr's legacy labels; on in a Configuration
	// that does not say, as in Dapr 1.18). Off, the path label is empty.
	// Label sets stay capped by MaxSeries either way.
	IncreasedCardinality bool
	// PathMatching are http.ServeMux path patterns
	// ("/v1.0/state/{store}/{key}", "/orders/{id}", which also matches
	// /v1.0/invoke/{app_id}/method/orders/{id}); a request matching one is
	// labelled with the pattern, others as without patterns.
	PathMatching []string
	// ExcludeVerbs leaves the method label empty.
	ExcludeVerbs bool
}

// MetricsOptionsFromConfig maps Configuration spec.metrics onto
// MetricsOptions.
func MetricsOptionsFromConfig(appID, namespace string, m config.Metrics) MetricsOptions {
	o := MetricsOptions{AppID: appID, Namespace: namespace}
	for _, b := range m.LatencyDistributionBuckets {
		o.LatencyBucketsMS = append(o.LatencyBucketsMS, float64(b))
	}
	// Dapr 1.18 still defaults to the high-cardinality labels.
	o.HTTP.IncreasedCardinality = m.HTTP.IncreasedCardinality == nil || *m.HTTP.IncreasedCardinality
	o.HTTP.ExcludeVerbs = m.HTTP.ExcludeVerbs != nil && *m.HTTP.ExcludeVerbs
	o.HTTP.PathMatching = slices.Clone(m.HTTP.PathMatching)
	o.RecordErrorCodes = m.RecordErrorCodes != nil && *m.RecordErrorCodes
	return o
}

// Metrics records the sidecar's Prometheus metrics. Build one with
// NewMetrics; a nil *Metrics is valid and records nothing.
type Metrics struct {
	appID     string
	namespace string
	maxSeries int

	http *httpMetrics
	grpc *grpcMetrics
	inv  *invokeMetrics
	comp *componentMetrics
	res  *resiliencyMetrics
	jobs *jobMetrics
	// wfacl counts the workflow access policy's decisions.
	wfacl *workflowACLMetrics
	// wfattest counts the attestations of workflow results.
	wfattest *workflowAttestMetrics
	// wf counts the workflow engine's work.
	wf *workflowMetrics
	// actors counts the actor reminders fired here.
	actors *actorMetrics
	// errCodes is nil unless recordErrorCodes is on.
	errCodes *errorCodeMetrics
}

// NewMetrics registers the sidecar's metrics on reg.
func NewMetrics(reg prometheus.Registerer, o MetricsOptions) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("metrics: a registry is required")
	}
	buckets := defaultLatencyBucketsMS
	if len(o.LatencyBucketsMS) > 0 {
		buckets = slices.Clone(o.LatencyBucketsMS)
		slices.Sort(buckets)
		buckets = slices.Compact(buckets)
	}
	m := &Metrics{appID: o.AppID, namespace: o.Namespace, maxSeries: o.MaxSeries}
	if m.maxSeries <= 0 {
		m.maxSeries = defaultMaxSeries
	}
	var err error
	if m.http, err = newHTTPMetrics(o, buckets, m.maxSeries); err != nil {
		return nil, err
	}
	m.grpc = newGRPCMetrics(o.AppID, buckets, m.maxSeries)
	m.inv = newInvokeMetrics(o.AppID, buckets, m.maxSeries)
	m.comp = newComponentMetrics(o.AppID, o.Namespace, buckets)
	m.res = newResiliencyMetrics(o.AppID)
	m.jobs = newJobMetrics(o.AppID, o.Namespace, buckets)
	m.wfacl = newWorkflowACLMetrics()
	m.wfattest = newWorkflowAttestMetrics(buckets)
	m.wf = newWorkflowMetrics(buckets)
	m.actors = newActorMetrics(o.AppID)
	var cs []prometheus.Collector
	cs = append(cs, m.http.collectors()...)
	cs = append(cs, m.grpc.collectors()...)
	cs = append(cs, m.inv.collectors()...)
	cs = append(cs, m.comp.collectors()...)
	cs = append(cs, m.res.collectors()...)
	cs = append(cs, m.jobs.collectors()...)
	cs = append(cs, m.wfacl.allowed, m.wfacl.denied)
	cs = append(cs, m.wfattest.collectors()...)
	cs = append(cs, m.wf.collectors()...)
	cs = append(cs, m.actors.remindersFired)
	if o.RecordErrorCodes {
		m.errCodes = newErrorCodeMetrics(o.AppID)
		cs = append(cs, m.errCodes.total)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metric: %w", err)
		}
	}
	return m, nil
}
