package observe

import (
	"testing"
	"time"

	"github.com/tandemrun/tandem/resiliency"
)

func TestComponentAndResiliencyMetrics(t *testing.T) {
	m, reg := newTestMetrics(t, MetricsOptions{AppID: "a", Namespace: "ns"})
	state := m.ComponentRecorder(KindState)
	state("store", "get", true, 2*time.Millisecond)
	state("store", "get", true, time.Millisecond)
	state("store", "set", false, time.Millisecond)
	m.ComponentOp("nonsense", "x", "y", true, 0)
	m.PubSubEgress("pubsub", "orders", true, time.Millisecond)
	m.PubSubIngress("pubsub", "orders", "retry", "retry", time.Millisecond)
	m.PubSubIngress("pubsub", "orders", "drop", "success", time.Millisecond)
	m.PubSubBulkEgress("pubsub", "orders", true, 3, time.Millisecond)
	m.PubSubBulkEgress("pubsub", "orders", false, 0, time.Millisecond)

	h := m.ResiliencyHooks()
	sc := resiliency.Scope{Name: "res", Target: "app_b", Direction: resiliency.Outbound}
	h.Loaded("res", "")
	h.Applied(sc, resiliency.KindRetry, "")
	h.Applied(sc, resiliency.KindBreaker, "closed")
	h.Applied(sc, resiliency.KindBreaker, "open")
	h.Activated(sc, resiliency.KindRetry, "")
	h.Activated(sc, resiliency.KindRetry, "")
	h.Activated(sc, resiliency.KindTimeout, "")
	h.Activated(sc, resiliency.KindBreaker, "open")
	h.BudgetExhausted("app:b")
	onEject, onReturn := m.EjectorHooks()
	onEject("10.0.0.1:50002", time.Second)
	onEject("10.0.0.2:50002", time.Second)
	onReturn("10.0.0.1:50002")

	tests := []struct {
		name string
		want map[string]float64
	}{
		{"dapr_component_state_count", map[string]float64{
			"app_id=a,component=store,namespace=ns,operation=get,success=true":  2,
			"app_id=a,component=store,namespace=ns,operation=set,success=false": 1,
		}},
		{"dapr_component_state_latencies", map[string]float64{
			"app_id=a,component=store,namespace=ns,operation=get,success=true":  2,
			"app_id=a,component=store,namespace=ns,operation=set,success=false": 1,
		}},
		{"dapr_component_pubsub_egress_count", map[string]float64{"app_id=a,component=pubsub,namespace=ns,success=true,topic=orders": 1}},
		{"dapr_component_pubsub_ingress_count", map[string]float64{
			"app_id=a,component=pubsub,namespace=ns,process_status=retry,status=retry,topic=orders":  1,
			"app_id=a,component=pubsub,namespace=ns,process_status=drop,status=success,topic=orders": 1,
		}},
		{"dapr_component_pubsub_egress_bulk_count", map[string]float64{
			"app_id=a,component=pubsub,namespace=ns,success=true,topic=orders":  1,
			"app_id=a,component=pubsub,namespace=ns,success=false,topic=orders": 1,
		}},
		{"dapr_component_pubsub_egress_bulk_event_count", map[string]float64{"app_id=a,component=pubsub,namespace=ns,success=true,topic=orders": 3}},
		{"dapr_resiliency_loaded", map[string]float64{"app_id=a,name=res,namespace=": 1}},
		{"dapr_resiliency_count", map[string]float64{
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=retry,status=,target=app_b":                1,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=closed,target=app_b": 1,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=open,target=app_b":   1,
		}},
		{"dapr_resiliency_activations_total", map[string]float64{
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=retry,status=,target=app_b":              2,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=timeout,status=,target=app_b":            1,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=open,target=app_b": 1,
		}},
		{"dapr_resiliency_cb_state", map[string]float64{
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=closed,target=app_b":    0,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=half-open,target=app_b": 0,
			"app_id=a,flow_direction=outbound,name=res,namespace=,policy=circuitbreaker,status=open,target=app_b":      1,
		}},
		{"tandem_resiliency_retry_budget_exhausted_total", map[string]float64{"app_id=a,target=app:b": 1}},
		{"tandem_resiliency_ejections_total", map[string]float64{"app_id=a": 2}},
		{"tandem_resiliency_ejected_instances", map[string]float64{"app_id=a": 1}},
	}
	for _, tt := range tests {
		if got := series(t, reg, tt.name); !equalSeries(got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
}
