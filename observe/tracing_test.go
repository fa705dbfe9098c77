package observe

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.yaml.in/yaml/v3"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/observe/otlptest"
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
		{"zipkin as dapr init writes it", `
samplingRate: "1"
zipkin: {endpointAddress: "http://localhost:9411/api/v2/spans"}`, nil,
			func(o TracingOptions) bool {
				return o.OTLP == nil && o.ZipkinURL == "http://localhost:9411/api/v2/spans" && len(o.Warnings) == 0
			}, ""},
		{"zipkin and otel both export", `
samplingRate: "1"
zipkin: {endpointAddress: "https://z.example/api/v2/spans"}
otel: {endpointAddress: "c:4317"}`, nil,
			func(o TracingOptions) bool { return o.OTLP != nil && o.ZipkinURL == "https://z.example/api/v2/spans" }, ""},
		{"zipkin without scheme", `
samplingRate: "1"
zipkin: {endpointAddress: "localhost:9411"}`, nil, nil, "tracing.zipkin.endpointAddress"},
		{"zipkin not http", `
zipkin: {endpointAddress: "ftp://z/spans"}`, nil, nil, "tracing.zipkin.endpointAddress"},
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
	if d := MetricsOptionsFromConfig("a", "ns", config.Metrics{}); !d.HTTP.IncreasedCardinality || d.HTTP.ExcludeVerbs {
		t.Errorf("defaults: %+v, want increasedCardinality on and verbs kept, as in Dapr 1.18", d.HTTP)
	}
	off := false
	if d := MetricsOptionsFromConfig("a", "ns", config.Metrics{HTTP: config.MetricsHTTP{IncreasedCardinality: &off}}); d.HTTP.IncreasedCardinality {
		t.Error("increasedCardinality: false not honoured")
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

// TestZipkinExport sends a server span to a Zipkin v2 endpoint and an OTLP
// receiver configured together, and checks what the Zipkin side decodes:
// nothing is posted on the request path (spans are batched), and Shutdown
// delivers the span to both without waiting for the batch delay.
func TestZipkinExport(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	zr := otlptest.StartZipkin(t)
	or := otlptest.Start(t)
	tr, err := NewTracing(t.Context(), TracingOptions{
		AppID: "caller", SamplingRate: 1, ZipkinURL: zr.URL(),
		OTLP: &OTLPOptions{Protocol: ProtocolGRPC, Endpoint: or.Addr(), Insecure: true},
	})
	if err != nil || tr == nil {
		t.Fatalf("NewTracing: %v, %v", tr, err)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1.0/invoke/callee/method/orders", nil)
	req.Header.Set("traceparent", rootParent)
	tr.HTTPMiddleware(statusHandler()).ServeHTTP(httptest.NewRecorder(), req)
	if n := len(zr.Spans()); n != 0 {
		t.Fatalf("%d spans posted to Zipkin before the request returned; want them batched", n)
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	var ids []string
	for name, rcv := range map[string]*otlptest.Receiver{"zipkin": zr, "otlp": or} {
		spans := rcv.Spans()
		if len(spans) != 1 {
			t.Fatalf("%s: %d spans after Shutdown, want 1: %+v", name, len(spans), spans)
		}
		s := spans[0]
		// Zipkin's model writes names in lower case.
		if !strings.EqualFold(s.Name, "CallLocal/callee/orders") || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Service != "caller" {
			t.Errorf("%s: span %q kind %v service %q, want CallLocal/callee/orders, server, caller", name, s.Name, s.Kind, s.Service)
		}
		if s.TraceID != rootTraceID || s.ParentSpanID != rootSpanID {
			t.Errorf("%s: trace %s parent %s, want the traceparent's %s / %s", name, s.TraceID, s.ParentSpanID, rootTraceID, rootSpanID)
		}
		ids = append(ids, s.SpanID)
	}
	if ids[0] != ids[1] {
		t.Errorf("span ids %v: the two exporters got different spans", ids)
	}
	if tags := zr.Spans()[0].Attributes; tags["deployment.environment"] != "test" || tags[attrAppID] != "caller" {
		t.Errorf("zipkin tags %v: want the resource attributes from OTEL_RESOURCE_ATTRIBUTES and %s", tags, attrAppID)
	}
}

func TestZipkinBadURL(t *testing.T) {
	_, err := NewTracing(t.Context(), TracingOptions{AppID: "a", SamplingRate: 1, ZipkinURL: "localhost:9411"})
	if err == nil || !strings.Contains(err.Error(), "tracing.zipkin.endpointAddress") {
		t.Errorf("err = %v, want one naming tracing.zipkin.endpointAddress", err)
	}
}

// TestSamplerLogged: the sampler in effect is logged in daprd's words,
// whether tracing ends up on or off.
func TestSamplerLogged(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want string
	}{{0, "TraceIDRatioBased{0}"}, {0.5, "TraceIDRatioBased{0.5}"}, {1, "TraceIDRatioBased{1}"}} {
		t.Run(tc.want, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := NewTracing(t.Context(), TracingOptions{AppID: "a", SamplingRate: tc.rate, Log: slog.New(slog.NewTextHandler(&buf, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if out := buf.String(); !strings.Contains(out, "Dapr trace sampler initialized: ") || !strings.Contains(out, tc.want) {
				t.Fatalf("log %q lacks the sampler %s", out, tc.want)
			}
		})
	}
}
