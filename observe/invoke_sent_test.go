package observe

import (
	"maps"
	"testing"
)

// TestInvokeSent checks the caller-side service invocation metrics of a
// call that does not go over a sidecar connection (an HTTP endpoint), and
// that a nil *Metrics records nothing.
func TestInvokeSent(t *testing.T) {
	m, reg := newTestMetrics(t, MetricsOptions{AppID: "caller"})
	m.InvokeSent("ext")(202)
	m.InvokeSent("ext")(202)
	m.InvokeSent("http://localhost:1")(500)
	pending := m.InvokeSent("slow") // no answer yet: counted as sent only

	for _, tc := range []struct {
		name string
		want map[string]float64
	}{
		{"dapr_runtime_service_invocation_req_sent_total", map[string]float64{
			"app_id=caller,dst_app_id=ext,type=unary":                2,
			"app_id=caller,dst_app_id=http://localhost:1,type=unary": 1,
			"app_id=caller,dst_app_id=slow,type=unary":               1,
		}},
		{"dapr_runtime_service_invocation_res_recv_total", map[string]float64{
			"app_id=caller,src_app_id=ext,status=202,type=unary":                2,
			"app_id=caller,src_app_id=http://localhost:1,status=500,type=unary": 1,
		}},
		{"dapr_runtime_service_invocation_res_recv_latency_ms", map[string]float64{
			"app_id=caller,src_app_id=ext,status=202":                2,
			"app_id=caller,src_app_id=http://localhost:1,status=500": 1,
		}},
	} {
		if got := series(t, reg, tc.name); !maps.Equal(got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	pending(200)

	var none *Metrics
	none.InvokeSent("ext")(200) // must not panic
}
