package observe

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/internal/loadreport"
)

func TestLoadCollector(t *testing.T) {
	backlog, unacked := int64(7), int64(2)
	report := loadreport.Report{AppID: "orders", Namespace: "default", InvocationsInFlight: 3, ActiveActors: 4,
		Subscriptions: []loadreport.Subscription{
			{PubsubName: "redis", Topic: "t1", Backlog: &backlog, Unacked: &unacked, InFlight: 1, Delivered: 10, DeliveryRate: 0.5, OldestPendingAgeSeconds: 12},
			{PubsubName: "mem", Topic: "t2", InFlight: 2, Delivered: 1},
		}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewLoadCollector(func(context.Context) loadreport.Report { return report }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series++
			var l []string
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "pubsub" || lp.GetName() == "topic" {
					l = append(l, lp.GetValue())
				}
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"/"+strings.Join(l, "/")] = v
		}
	}
	want := map[string]float64{
		"tandem_pubsub_subscription_pending_messages/redis/t1":           9,
		"tandem_pubsub_subscription_pending_messages/mem/t2":             2,
		"tandem_pubsub_subscription_backlog_messages/redis/t1":           7,
		"tandem_pubsub_subscription_unacked_messages/redis/t1":           2,
		"tandem_pubsub_subscription_in_flight_messages/mem/t2":           2,
		"tandem_pubsub_subscription_delivered_total/redis/t1":            10,
		"tandem_pubsub_subscription_delivery_rate/redis/t1":              0.5,
		"tandem_pubsub_subscription_oldest_pending_age_seconds/redis/t1": 12,
		"tandem_app_invocations_in_flight/":                              3,
		"tandem_actors_active/":                                          4,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["tandem_pubsub_subscription_backlog_messages/mem/t2"]; ok {
		t.Error("a backlog is exported for a broker that cannot tell")
	}
	if want := 2 + 2*5 + 2; series != want {
		t.Errorf("gathered %d series, want %d", series, want)
	}
}
