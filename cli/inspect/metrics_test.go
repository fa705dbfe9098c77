package inspect

import (
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
dapr_service_invocation_req_recv_latency_ms_count{app_id="a",method="x"} 3
dapr_service_invocation_req_recv_latency_ms_count{app_id="a",method="y"} 1
dapr_service_invocation_req_recv_latency_ms_sum{app_id="a",method="x"} 6
dapr_service_invocation_req_recv_latency_ms_sum{app_id="a",method="y"} 2
dapr_grpc_io_client_roundtrip_latency_count{method="z"} 100
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
	if m.Invocations != 4 || m.LatencyMs != 2 {
		t.Fatalf("invocations %v latency %v, want 4 and 2", m.Invocations, m.LatencyMs)
	}
	if len(m.Families) != 5 || m.Families[0].Name != "dapr_grpc_io_client_roundtrip_latency_count" {
		t.Fatalf("families %+v", m.Families)
	}
}
