package observe

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/internal/loadreport"
)

// loadScrapeTimeout bounds reading the load report during a scrape (it
// asks the brokers for their backlog).
const loadScrapeTimeout = 5 * time.Second

var (
	subLabels          = []string{"app_id", "namespace", "pubsub", "topic"}
	appLabels          = []string{"app_id", "namespace"}
	descSubPending     = prometheus.NewDesc("tandem_pubsub_subscription_pending_messages", "Messages the subscription still has to settle: the broker's backlog plus unacknowledged messages of the app's consumer group, or the sidecar's in-flight deliveries where the broker cannot tell.", subLabels, nil)
	descSubBacklog     = prometheus.NewDesc("tandem_pubsub_subscription_backlog_messages", "Messages in the broker not yet delivered to the app's consumer group (brokers that can tell: Redis Streams, JetStream).", subLabels, nil)
	descSubUnacked     = prometheus.NewDesc("tandem_pubsub_subscription_unacked_messages", "Messages delivered to the app's consumer group and not yet acknowledged, per the broker.", subLabels, nil)
	descSubInFlight    = prometheus.NewDesc("tandem_pubsub_subscription_in_flight_messages", "Deliveries of this sidecar to the app not yet finished.", subLabels, nil)
	descSubDelivered   = prometheus.NewDesc("tandem_pubsub_subscription_delivered_total", "Deliveries to the app finished since the subscription started.", subLabels, nil)
	descSubRate        = prometheus.NewDesc("tandem_pubsub_subscription_delivery_rate", "Deliveries to the app per second over the last minute.", subLabels, nil)
	descSubOldestAge   = prometheus.NewDesc("tandem_pubsub_subscription_oldest_pending_age_seconds", "Age of the oldest message the broker holds unacknowledged for the app's consumer group (0: none, or the broker cannot tell).", subLabels, nil)
	descAppInvocations = prometheus.NewDesc("tandem_app_invocations_in_flight", "Service invocations of the app being served.", appLabels, nil)
	descActorsActive   = prometheus.NewDesc("tandem_actors_active", "Actors active in this sidecar, all types.", appLabels, nil)
)

// loadCollector exports the sidecar's load report at each scrape.
type loadCollector struct {
	load func(context.Context) loadreport.Report
}

// NewLoadCollector returns a collector of the sidecar's load report
// (proxy.Sidecar.Load): per subscription the pending messages, backlog,
// unacked and in-flight messages, deliveries and their rate, and the age
// of the oldest pending message; per app the invocations in flight and
// the active actors. Register it on the metrics registry.
func NewLoadCollector(load func(context.Context) loadreport.Report) prometheus.Collector {
	return loadCollector{load: load}
}

func (c loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubPending, descSubBacklog, descSubUnacked, descSubInFlight, descSubDelivered, descSubRate, descSubOldestAge, descAppInvocations, descActorsActive} {
		ch <- d
	}
}

func (c loadCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), loadScrapeTimeout)
	defer cancel()
	r := c.load(ctx)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descAppInvocations, float64(r.InvocationsInFlight), r.AppID, r.Namespace)
	gauge(descActorsActive, float64(r.ActiveActors), r.AppID, r.Namespace)
	for _, s := range r.Subscriptions {
		l := []string{r.AppID, r.Namespace, s.PubsubName, s.Topic}
		gauge(descSubPending, float64(s.Pending()), l...)
		if s.BrokerKnows() {
			gauge(descSubBacklog, float64(*s.Backlog), l...)
			gauge(descSubUnacked, float64(*s.Unacked), l...)
		}
		gauge(descSubInFlight, float64(s.InFlight), l...)
		ch <- prometheus.MustNewConstMetric(descSubDelivered, prometheus.CounterValue, float64(s.Delivered), l...)
		gauge(descSubRate, s.DeliveryRate, l...)
		gauge(descSubOldestAge, s.OldestPendingAgeSeconds, l...)
	}
}
