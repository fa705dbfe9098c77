package inspect

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP x
# TYPE dapr_http_server_request_count counter
process_resident_memory_bytes 3.5e+07
process_cpu_seconds_total 0.25
dapr_runtime_mtls_workload_cert_rotated_total 2
tandem_workload_cert_expiry_timestamp_seconds 1.7e+09
dapr_runtime_service_invocation_req_sent_total{app_id="a",dst_app_id="b",type="unary"} 3
dapr_runtime_service_invocation_req_sent_total{app_id="a",dst_app_id="c",type="unary"} 1
dapr_runtime_service_invocation_req_recv_total{app_id="a",src_app_id="b"} 7
dapr_runtime_service_invocation_res_recv_latency_ms_bucket{app_id="a",le="1"} 4
dapr_runtime_service_invocation_res_recv_latency_ms_count{app_id="a",dst_app_id="b"} 3
dapr_runtime_service_invocation_res_recv_latency_ms_count{app_id="a",dst_app_id="c"} 1
dapr_runtime_service_invocation_res_recv_latency_ms_sum{app_id="a",dst_app_id="b"} 6
dapr_runtime_service_invocation_res_recv_latency_ms_sum{app_id="a",dst_app_id="c"} 2
dapr_http_server_request_count{method="GET"} 10
dapr_grpc_io_server_completed_rpcs{grpc_method="x"} 5
bad line without value
weird{a="}"} NaN
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSBytes != 3.5e7 || m.CPUSeconds != 0.25 || m.CertRotations != 2 || m.CertExpiry != 1.7e9 {
		t.Fatalf("process/cert metrics: %+v", m)
	}
	if m.InvocationsSent != 4 || m.InvocationsReceived != 7 || m.LatencyMs != 2 || m.APIRequests != 15 {
		t.Fatalf("invocations %+v", m)
	}
	if !reflect.DeepEqual(m.SentTo, map[string]float64{"b": 3, "c": 1}) {
		t.Fatalf("SentTo %v", m.SentTo)
	}
	for _, f := range m.Families {
		if strings.HasSuffix(f.Name, "_bucket") || strings.HasPrefix(f.Name, "process_") {
			t.Errorf("family %s listed", f.Name)
		}
	}
	if len(m.Families) != 8 {
		t.Fatalf("families %+v", m.Families)
	}
}

func TestParseMetricsEmpty(t *testing.T) {
	m, err := ParseMetrics(strings.NewReader(""))
	if err != nil || m.InvocationsSent != 0 || m.LatencyMs != 0 || len(m.Families) != 0 {
		t.Fatalf("%+v %v", m, err)
	}
}
