package observe

import (
	"sort"
	"strings"
	"testing"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series returns the series of metric name as "k=v,k=v" label strings
// mapped to their value (counter value, or histogram sample count).
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelString(m)] = value(m)
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

func newTestMetrics(t testing.TB, o MetricsOptions) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if o.AppID == "" {
		o.AppID = "app"
	}
	m, err := NewMetrics(reg, o)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func newMetricsErr(o MetricsOptions) (*Metrics, error) {
	return NewMetrics(prometheus.NewRegistry(), o)
}

func newInvokeRequest() *internalsv1.InternalInvokeRequest {
	return &internalsv1.InternalInvokeRequest{Metadata: map[string]*internalsv1.ListStringValue{
		callerAppIDKey: {Values: []string{"caller"}},
	}}
}

func mustGather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
