package scaler

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tandemrun/tandem/internal/loadreport"
)

// Metric names what a ScaledObject scales on.
type Metric string

const (
	// MetricPending: messages of the app's subscriptions waiting in the
	// broker or in flight.
	MetricPending Metric = "pending"
	// MetricInvocations: service invocations of the app in flight.
	MetricInvocations Metric = "invocations"
	// MetricActors: the app's active actors.
	MetricActors Metric = "actors"
)

// Query is a ScaledObject's scalerMetadata, checked.
type Query struct {
	AppID, Namespace  string
	Metric            Metric
	PubsubName, Topic string
	Target            float64
	Activation        float64
}

// Defaults of Query.
const (
	DefaultTarget     = 10
	DefaultActivation = 0
)

// ParseQuery reads scalerMetadata (see the package doc); namespace is the
// ScaledObject's, the default of the app's.
func ParseQuery(md map[string]string, namespace string) (Query, error) {
	q := Query{AppID: md["appId"], Namespace: namespace, Metric: MetricPending, PubsubName: md["pubsubName"], Topic: md["topic"],
		Target: DefaultTarget, Activation: DefaultActivation}
	if q.AppID == "" {
		return q, fmt.Errorf("scalerMetadata: appId is required (the app ID of the app to scale)")
	}
	if v := md["namespace"]; v != "" {
		q.Namespace = v
	}
	if v := md["metric"]; v != "" {
		q.Metric = Metric(v)
	}
	switch q.Metric {
	case MetricPending, MetricInvocations, MetricActors:
	default:
		return q, fmt.Errorf("scalerMetadata: metric %q is not pending, invocations or actors", q.Metric)
	}
	if q.Metric != MetricPending && (q.PubsubName != "" || q.Topic != "") {
		return q, fmt.Errorf("scalerMetadata: pubsubName and topic only go with metric pending, not %q", q.Metric)
	}
	var err error
	if q.Target, err = number(md, q.Target, "targetValue", "targetBacklog"); err != nil {
		return q, err
	}
	if q.Target <= 0 {
		return q, fmt.Errorf("scalerMetadata: the target must be above 0, not %v", q.Target)
	}
	if q.Activation, err = number(md, q.Activation, "activationValue", "activationBacklog"); err != nil {
		return q, err
	}
	return q, nil
}

// number reads the first of keys that is set.
func number(md map[string]string, def float64, keys ...string) (float64, error) {
	for _, k := range keys {
		v, ok := md[k]
		if !ok || v == "" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, fmt.Errorf("scalerMetadata: %s %q is not a number of 0 or more", k, v)
		}
		return f, nil
	}
	return def, nil
}

// MetricName is the name KEDA gives the metric (it prefixes it with
// "s<index>-"): the metric, the app and the topic filter.
func (q Query) MetricName() string {
	parts := []string{"tandem", string(q.Metric), q.AppID}
	if q.PubsubName != "" {
		parts = append(parts, q.PubsubName)
	}
	if q.Topic != "" {
		parts = append(parts, q.Topic)
	}
	return sanitizeMetricName(strings.Join(parts, "-"))
}

// sanitizeMetricName keeps a Kubernetes external metric name's
// characters (lower-case alphanumerics, '-', '.').
func sanitizeMetricName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, s)
}

// Value is the query's figure over the reports of the app's replicas.
// For pending: per subscription (pub/sub, topic) the largest broker
// figure among the replicas (it is the consumer group's), or the sum of
// their in-flight deliveries where the broker cannot tell; then the sum
// over the matching subscriptions. Invocations and actors are summed.
func (q Query) Value(reports []loadreport.Report) float64 {
	switch q.Metric {
	case MetricInvocations:
		var n int64
		for _, r := range reports {
			n += r.InvocationsInFlight
		}
		return float64(n)
	case MetricActors:
		var n int64
		for _, r := range reports {
			n += r.ActiveActors
		}
		return float64(n)
	}
	type key struct{ pubsub, topic string }
	type agg struct {
		broker   int64
		known    bool
		inFlight int64
	}
	subs := map[key]*agg{}
	for _, r := range reports {
		for _, s := range r.Subscriptions {
			if (q.PubsubName != "" && s.PubsubName != q.PubsubName) || (q.Topic != "" && s.Topic != q.Topic) {
				continue
			}
			k := key{s.PubsubName, s.Topic}
			a := subs[k]
			if a == nil {
				a = &agg{}
				subs[k] = a
			}
			a.inFlight += s.InFlight
			if s.BrokerKnows() {
				a.broker, a.known = max(a.broker, s.Pending()), true
			}
		}
	}
	var n int64
	for _, a := range subs {
		if a.known {
			n += a.broker
		} else {
			n += a.inFlight
		}
	}
	return float64(n)
}
