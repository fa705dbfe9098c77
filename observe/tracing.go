package observe

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	//lint:ignore SA1019 Dapr configurations name tracing.zipkin; the exporter is maintained until early 2027 and OTLP (tracing.otel) is the way on
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/internal/spanid"
)

// OTLP protocols (tracing.otel.protocol).
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
)

// TracingOptions configure NewTracing.
type TracingOptions struct {
	// AppID is the service.name of every span (OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override it).
	AppID string
	// SamplingRate in [0, 1]; 0 turns tracing off entirely.
	SamplingRate float64
	// OTLP, if set, exports spans with OTLP.
	OTLP *OTLPOptions
	// ZipkinURL, if set, exports spans as Zipkin v2 JSON to this URL
	// (tracing.zipkin.endpointAddress, e.g.
	// http://localhost:9411/api/v2/spans). It may be set together with
	// OTLP: as in Dapr, every configured exporter gets every span.
	ZipkinURL string
	// Stdout, if set, writes spans as JSON lines (tracing.stdout).
	Stdout io.Writer
	// Warnings are logged by NewTracing (unsupported settings).
	Warnings []string
	Log      *slog.Logger
}

// OTLPOptions are tracing.otel. Unset fields fall back to the standard
// OTEL_EXPORTER_OTLP_* environment variables, which the exporters read.
type OTLPOptions struct {
	Protocol string // grpc (default) or http
	// Endpoint is host:port, or a URL (http://host:4318/v1/traces).
	Endpoint string
	Insecure bool
	Headers  map[string]string
	Timeout  time.Duration
}

// TracingOptionsFromConfig maps Configuration spec.tracing onto
// TracingOptions. Without tracing.otel.endpointAddress, an OTLP endpoint
// from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
// (protocol from OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL) is used.
// tracing.zipkin.endpointAddress (which `dapr init` writes into the default
// configuration) must be an http(s) URL; spans go to it in addition to any
// OTLP endpoint.
func TracingOptionsFromConfig(appID string, c *config.Configuration, getenv func(string) string, stdout io.Writer) (TracingOptions, error) {
	t := c.Spec.Tracing
	o := TracingOptions{AppID: appID, SamplingRate: c.SamplingRate()}
	if t.Stdout {
		o.Stdout = stdout
	}
	if z := t.Zipkin.EndpointAddress; z != "" {
		if _, err := parseZipkinURL(z); err != nil {
			return o, err
		}
		o.ZipkinURL = z
	}
	if t.Otel.EndpointAddress != "" {
		timeout, err := t.Otel.Timeout.Parse()
		if err != nil {
			return o, fmt.Errorf("tracing.otel.timeout: %w", err)
		}
		o.OTLP = &OTLPOptions{
			Protocol: strings.ToLower(strings.TrimSpace(t.Otel.Protocol)),
			Endpoint: t.Otel.EndpointAddress,
			Insecure: !t.Otel.Secure(),
			Timeout:  timeout,
		}
		if len(t.Otel.Headers) > 0 {
			o.OTLP.Headers = make(map[string]string, len(t.Otel.Headers))
			for _, h := range t.Otel.Headers {
				o.OTLP.Headers[h.Name] = h.Value
			}
		}
	} else if getenv != nil && (getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "") {
		proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		o.OTLP = &OTLPOptions{Protocol: ProtocolGRPC}
		if strings.HasPrefix(proto, "http") {
			o.OTLP.Protocol = ProtocolHTTP
		}
	}
	if o.OTLP != nil {
		switch o.OTLP.Protocol {
		case "":
			o.OTLP.Protocol = ProtocolGRPC
		case ProtocolGRPC, ProtocolHTTP:
		default:
			return o, fmt.Errorf("tracing.otel.protocol %q: use grpc or http", o.OTLP.Protocol)
		}
	}
	return o, nil
}

// Tracing creates spans for the sidecar's hops and exports them. A nil
// *Tracing is valid: tracing is off, nothing is created and trace context
// passes through untouched.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	appID  string
}

// NewTracing builds the tracer provider, or returns nil (tracing off,
// trace context forwarded as it comes) when o.SamplingRate is 0 or no
// exporter is configured. Call Shutdown to flush spans on exit.
func NewTracing(ctx context.Context, o TracingOptions) (*Tracing, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	for _, w := range o.Warnings {
		o.Log.Warn(w)
	}
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(o.SamplingRate))
	// daprd's line, which tools read to see the sampling in effect.
	o.Log.Info("Dapr trace sampler initialized: " + sampler.Description())
	if o.SamplingRate <= 0 {
		return nil, nil
	}
	if o.OTLP == nil && o.ZipkinURL == "" && o.Stdout == nil {
		o.Log.Warn("tracing.samplingRate is set but no exporter is configured: tracing stays off (trace context is still forwarded); set tracing.otel.endpointAddress or tracing.zipkin.endpointAddress")
		return nil, nil
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", o.AppID)),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		// The workflow engine's spans keep the IDs their work items
		// named as parent (spanid.With).
		sdktrace.WithIDGenerator(spanid.Generator()),
	}
	if o.OTLP != nil {
		exp, err := newOTLPExporter(ctx, *o.OTLP)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
		o.Log.Info("tracing to OTLP", "protocol", o.OTLP.Protocol, "endpoint", o.OTLP.Endpoint,
			"insecure", o.OTLP.Insecure, "sampling_rate", o.SamplingRate)
	}
	if o.ZipkinURL != "" {
		exp, endpoint, err := newZipkinExporter(o.ZipkinURL)
		if err != nil {
			return nil, err
		}
		// Batched like OTLP: spans are queued on the request path and
		// posted from the processor's goroutine.
		opts = append(opts, sdktrace.WithBatcher(exp))
		o.Log.Info("tracing to Zipkin", "endpoint", endpoint, "sampling_rate", o.SamplingRate)
	}
	if o.Stdout != nil {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(o.Stdout))
		if err != nil {
			return nil, fmt.Errorf("stdout trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithSyncer(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracing{
		tp:     tp,
		tracer: tp.Tracer("github.com/tandemrun/tandem/observe"),
		prop:   propagation.TraceContext{},
		appID:  o.AppID,
	}, nil
}

func newOTLPExporter(ctx context.Context, o OTLPOptions) (sdktrace.SpanExporter, error) {
	isURL := strings.Contains(o.Endpoint, "://")
	switch o.Protocol {
	case ProtocolHTTP:
		var opts []otlptracehttp.Option
		switch {
		case isURL:
			opts = append(opts, otlptracehttp.WithEndpointURL(o.Endpoint))
		case o.Endpoint != "":
			opts = append(opts, otlptracehttp.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		if o.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(o.Timeout))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP trace exporter: %w", err)
		}
		return exp, nil
	default:
		var opts []otlptracegrpc.Option
		switch {
		case isURL:
			opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
		case o.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
		}
		if o.Timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(o.Timeout))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("OTLP/gRPC trace exporter: %w", err)
		}
		return exp, nil
	}
}

// zipkinTimeout bounds one POST of a batch, like the OTLP exporters'
// default timeout, so an unreachable Zipkin does not hold the batch
// processor (and shutdown) for long.
const zipkinTimeout = 10 * time.Second

// parseZipkinURL accepts what the Zipkin exporter can post to: an
// absolute http or https URL.
func parseZipkinURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing.zipkin.endpointAddress %q is not an http(s) URL: write it like http://localhost:9411/api/v2/spans", raw)
	}
	return u, nil
}

// newZipkinExporter returns the exporter and the URL without credentials,
// for logging.
func newZipkinExporter(rawURL string) (sdktrace.SpanExporter, string, error) {
	u, err := parseZipkinURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	exp, err := zipkin.New(rawURL, zipkin.WithClient(&http.Client{Timeout: zipkinTimeout}))
	if err != nil {
		return nil, "", fmt.Errorf("zipkin trace exporter: %w", err)
	}
	return exp, u.Redacted(), nil
}

// Shutdown flushes buffered spans and stops the exporters.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// ForceFlush exports buffered spans now (tests, shutdown paths).
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}
