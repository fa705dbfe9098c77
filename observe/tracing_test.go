package observe

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tandemrun/tandem/config"
)

func TestTracingOptionsFromConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		want    func(TracingOptions) bool
		wantErr string
	}{
		{"off by default", ``, nil, func(o TracingOptions) bool { return o.SamplingRate == 0 && o.OTLP == nil }, ""},
		{"otel grpc insecure with headers", `
samplingRate: "0.5"
otel: {endpointAddress: "127.0.0.1:4317", protocol: grpc, isSecure: false, headers: ["a=b"], timeout: 2s}`, nil,
			func(o TracingOptions) bool {
				return o.SamplingRate == 0.5 && o.OTLP.Protocol == ProtocolGRPC && o.OTLP.Insecure &&
					o.OTLP.Headers["a"] == "b" && o.OTLP.Timeout.Seconds() == 2
			}, ""},
		{"otel http secure by default", `
samplingRate: "1"
otel: {endpointAddress: "collector:4318", protocol: http}`, nil,
			func(o TracingOptions) bool { return o.OTLP.Protocol == ProtocolHTTP && !o.OTLP.Insecure }, ""},
		{"endpoint from OTEL env", `samplingRate: "1"`, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			func(o TracingOptions) bool { return o.OTLP != nil && o.OTLP.Protocol == ProtocolHTTP }, ""},
		{"zipkin unsupported", `
samplingRate: "1"
zipkin: {endpointAddress: "http://z:9411/api/v2/spans"}`, nil,
			func(o TracingOptions) bool {
				return o.OTLP == nil && len(o.Warnings) == 1 && strings.Contains(o.Warnings[0], "zipkin")
			}, ""},
		{"bad protocol", `
samplingRate: "1"
otel: {endpointAddress: "c:1", protocol: thrift}`, nil, nil, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			if err := yaml.Unmarshal([]byte(tt.yaml), &cfg.Spec.Tracing); err != nil {
				t.Fatal(err)
			}
			o, err := TracingOptionsFromConfig("app", cfg, func(k string) string { return tt.env[k] }, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(o) {
				t.Errorf("options %+v (otlp %+v)", o, o.OTLP)
			}
		})
	}
}

func TestMetricsOptionsFromConfig(t *testing.T) {
	var m config.Metrics
	if err := yaml.Unmarshal([]byte(`
latencyDistributionBuckets: [5, 50, 500]
http: {increasedCardinality: true, pathMatching: ["/orders/{id}"], excludeVerbs: true}`), &m); err != nil {
		t.Fatal(err)
	}
	o := MetricsOptionsFromConfig("a", "ns", m)
	if len(o.LatencyBucketsMS) != 3 || o.LatencyBucketsMS[2] != 500 || !o.HTTP.IncreasedCardinality || !o.HTTP.ExcludeVerbs || o.HTTP.PathMatching[0] != "/orders/{id}" {
		t.Errorf("%+v", o)
	}
	mm, reg2 := newTestMetrics(t, o)
	serve(mm.HTTPMiddleware(statusHandler()), "GET", "/orders/7", "")
	for _, mf := range mustGather(t, reg2) {
		if mf.GetName() != "dapr_http_server_latency" {
			continue
		}
		if n := len(mf.GetMetric()[0].GetHistogram().GetBucket()); n != 3 {
			t.Errorf("%d buckets, want 3 from latencyDistributionBuckets", n)
		}
	}
}

func TestNoExporterMeansOff(t *testing.T) {
	tr, err := NewTracing(t.Context(), TracingOptions{AppID: "a", SamplingRate: 1})
	if err != nil || tr != nil {
		t.Errorf("rate 1 without exporter: %v, %v; want tracing off", tr, err)
	}
}
