package observe

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Component kinds with operation metrics, named as in Dapr
// (dapr_component_<kind>_count and dapr_component_<kind>_latencies).
const (
	KindState         = "state"
	KindSecret        = "secret"
	KindConfiguration = "configuration"
	KindOutputBinding = "output_binding"
	KindCrypto        = "crypto"
)

var componentKinds = []string{KindState, KindSecret, KindConfiguration, KindOutputBinding, KindCrypto}

type compKey struct {
	kind, component, operation string
	success                    bool
}

type egressKey struct {
	component, topic string
	success          bool
}

type ingressKey struct {
	component, topic, processStatus, status string
}

type countLatency struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// componentMetrics are Dapr's component metrics. Their labels come from
// configuration (component names, topics) and from a fixed set of
// operations, so they are bounded by what is deployed; a cap still
// applies.
type componentMetrics struct {
	counts      map[string]*prometheus.CounterVec
	latencies   map[string]*prometheus.HistogramVec
	egCount     *prometheus.CounterVec
	egLatency   *prometheus.HistogramVec
	inCount     *prometheus.CounterVec
	inLatency   *prometheus.HistogramVec
	bulkCount   *prometheus.CounterVec
	bulkEvents  *prometheus.CounterVec
	bulkLatency *prometheus.HistogramVec

	ops     *boundCache[compKey, countLatency]
	egress  *boundCache[egressKey, countLatency]
	ingress *boundCache[ingressKey, countLatency]
	bulk    *boundCache[egressKey, bulkRecorders]
}

// bulkRecorders are the series of one bulk publish label set.
type bulkRecorders struct {
	calls   countLatency
	entries prometheus.Counter // success is always "true": entries published
}

func newComponentMetrics(appID, namespace string, buckets []float64) *componentMetrics {
	c := &componentMetrics{counts: map[string]*prometheus.CounterVec{}, latencies: map[string]*prometheus.HistogramVec{}}
	labels := []string{"app_id", "component", "namespace", "operation", "success"}
	for _, k := range componentKinds {
		c.counts[k] = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_component_" + k + "_count", Help: "Operations performed on " + k + " components.",
		}, labels)
		c.latencies[k] = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dapr_component_" + k + "_latencies", Help: "Latency of operations on " + k + " components, in milliseconds.", Buckets: buckets,
		}, labels)
	}
	eg := []string{"app_id", "component", "namespace", "success", "topic"}
	c.egCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_component_pubsub_egress_count", Help: "Messages published to pub/sub components."}, eg)
	c.egLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dapr_component_pubsub_egress_latencies", Help: "Latency of publishing to pub/sub components, in milliseconds.", Buckets: buckets}, eg)
	c.bulkCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_component_pubsub_egress_bulk_count", Help: "Bulk publish calls to pub/sub components."}, eg)
	c.bulkEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_component_pubsub_egress_bulk_event_count", Help: "Messages published to pub/sub components through bulk publish."}, eg)
	c.bulkLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dapr_component_pubsub_egress_bulk_latencies", Help: "Latency of bulk publish calls to pub/sub components, in milliseconds.", Buckets: buckets}, eg)
	in := []string{"app_id", "component", "namespace", "process_status", "status", "topic"}
	c.inCount = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_component_pubsub_ingress_count", Help: "Messages delivered from pub/sub components to the app, by outcome."}, in)
	c.inLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dapr_component_pubsub_ingress_latencies", Help: "Latency of delivering pub/sub messages to the app, in milliseconds.", Buckets: buckets}, in)

	c.ops = newBoundCache(0, func(k compKey) countLatency {
		v := []string{appID, k.component, namespace, k.operation, strconv.FormatBool(k.success)}
		return countLatency{c.counts[k.kind].WithLabelValues(v...), c.latencies[k.kind].WithLabelValues(v...)}
	}, func() countLatency {
		v := []string{appID, overflowLabel, namespace, overflowLabel, overflowLabel}
		return countLatency{c.counts[KindState].WithLabelValues(v...), c.latencies[KindState].WithLabelValues(v...)}
	})
	c.egress = newBoundCache(0, func(k egressKey) countLatency {
		v := []string{appID, k.component, namespace, strconv.FormatBool(k.success), k.topic}
		return countLatency{c.egCount.WithLabelValues(v...), c.egLatency.WithLabelValues(v...)}
	}, func() countLatency {
		v := []string{appID, overflowLabel, namespace, overflowLabel, overflowLabel}
		return countLatency{c.egCount.WithLabelValues(v...), c.egLatency.WithLabelValues(v...)}
	})
	c.ingress = newBoundCache(0, func(k ingressKey) countLatency {
		v := []string{appID, k.component, namespace, k.processStatus, k.status, k.topic}
		return countLatency{c.inCount.WithLabelValues(v...), c.inLatency.WithLabelValues(v...)}
	}, func() countLatency {
		v := []string{appID, overflowLabel, namespace, overflowLabel, overflowLabel, overflowLabel}
		return countLatency{c.inCount.WithLabelValues(v...), c.inLatency.WithLabelValues(v...)}
	})
	bulk := func(component, success, topic string) bulkRecorders {
		v := []string{appID, component, namespace, success, topic}
		return bulkRecorders{
			calls:   countLatency{c.bulkCount.WithLabelValues(v...), c.bulkLatency.WithLabelValues(v...)},
			entries: c.bulkEvents.WithLabelValues(appID, component, namespace, "true", topic),
		}
	}
	c.bulk = newBoundCache(0, func(k egressKey) bulkRecorders {
		return bulk(k.component, strconv.FormatBool(k.success), k.topic)
	}, func() bulkRecorders {
		return bulk(overflowLabel, overflowLabel, overflowLabel)
	})
	return c
}

func (c *componentMetrics) collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for _, k := range componentKinds {
		out = append(out, c.counts[k], c.latencies[k])
	}
	return append(out, c.egCount, c.egLatency, c.inCount, c.inLatency, c.bulkCount, c.bulkEvents, c.bulkLatency)
}

func observe(cl countLatency, d time.Duration) {
	cl.count.Inc()
	if d > 0 {
		cl.latency.Observe(float64(d) / float64(time.Millisecond))
	}
}

// ComponentOp records one operation on a component: kind is one of the
// Kind constants (others are ignored), operation Dapr's name for it
// ("get", "set", "delete", "bulk_get", "transaction", "query", ...).
func (m *Metrics) ComponentOp(kind, component, operation string, success bool, d time.Duration) {
	if m == nil {
		return
	}
	if _, ok := m.comp.counts[kind]; !ok {
		return
	}
	observe(m.comp.ops.get(compKey{kind: kind, component: component, operation: operation, success: success}), d)
}

// ComponentRecorder returns ComponentOp bound to one kind, as a plain
// function a building-block API can hold without importing observe.
func (m *Metrics) ComponentRecorder(kind string) func(component, operation string, success bool, d time.Duration) {
	return func(component, operation string, success bool, d time.Duration) {
		m.ComponentOp(kind, component, operation, success, d)
	}
}

// PubSubEgress records one publish.
func (m *Metrics) PubSubEgress(component, topic string, success bool, d time.Duration) {
	if m == nil {
		return
	}
	observe(m.comp.egress.get(egressKey{component: component, topic: topic, success: success}), d)
}

// PubSubBulkEgress records one bulk publish call that published events of
// its entries.
func (m *Metrics) PubSubBulkEgress(component, topic string, success bool, events int, d time.Duration) {
	if m == nil {
		return
	}
	r := m.comp.bulk.get(egressKey{component: component, topic: topic, success: success})
	observe(r.calls, d)
	if events > 0 {
		r.entries.Add(float64(events))
	}
}

// PubSubIngress records one delivery to the app with daprd's outcome
// labels: processStatus "success", "retry" or "drop", and status (how
// daprd counts it: "success" also for an event the app dropped on
// purpose).
func (m *Metrics) PubSubIngress(component, topic, processStatus, status string, d time.Duration) {
	if m == nil {
		return
	}
	observe(m.comp.ingress.get(ingressKey{component: component, topic: topic, processStatus: processStatus, status: status}), d)
}
