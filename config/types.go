package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Resource identity of a Configuration document.
const (
	APIVersion = "dapr.io/v1alpha1"
	Kind       = "Configuration"
)

// Access actions used by accessControl and secrets scopes.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Configuration is one Configuration resource (or several merged in order,
// see LoadFiles).
type Configuration struct {
	APIVersion string   `yaml:"apiVersion,omitempty"`
	Kind       string   `yaml:"kind,omitempty"`
	Metadata   Metadata `yaml:"metadata,omitempty"`
	Spec       Spec     `yaml:"spec,omitempty"`

	// Source names the file(s) the configuration came from; used in messages.
	Source string `yaml:"-"`
	// Warnings lists things Dapr would silently ignore: unknown fields,
	// extra documents, settings Tandem accepts but does not act on.
	Warnings []Warning `yaml:"-"`
}

// Metadata is the Kubernetes-style object metadata. Fields other than the
// ones named here (uid, resourceVersion, ... from `kubectl get -o yaml`) are
// kept in Extra so they are not reported as unknown.
type Metadata struct {
	Name        string            `yaml:"name,omitempty"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
	Extra       map[string]any    `yaml:",inline"`
}

// Spec is the Configuration spec. Sections are values, not pointers: an
// absent section is its zero value, and defaults live in Default() and the
// accessor methods.
type Spec struct {
	HTTPPipeline    Pipeline `yaml:"httpPipeline,omitempty"`
	AppHTTPPipeline Pipeline `yaml:"appHttpPipeline,omitempty"`
	Tracing         Tracing  `yaml:"tracing,omitempty"`
	MTLS            MTLS     `yaml:"mtls,omitempty"`
	// Metric is the legacy spelling of Metrics. After parsing, Metrics holds
	// the effective settings (Metrics wins field by field, as in Dapr).
	Metric         Metrics        `yaml:"metric,omitempty"`
	Metrics        Metrics        `yaml:"metrics,omitempty"`
	Secrets        Secrets        `yaml:"secrets,omitempty"`
	AccessControl  AccessControl  `yaml:"accessControl,omitempty"`
	NameResolution NameResolution `yaml:"nameResolution,omitempty"`
	Features       []Feature      `yaml:"features,omitempty"`
	API            API            `yaml:"api,omitempty"`
	Components     Components     `yaml:"components,omitempty"`
	Logging        Logging        `yaml:"logging,omitempty"`
	// Wasm is accepted so Dapr files load; Tandem does not use it.
	Wasm     Wasm     `yaml:"wasm,omitempty"`
	Workflow Workflow `yaml:"workflow,omitempty"`
}

// Workflow tunes the workflow engine. Tandem acts on StateRetentionPolicy
// and the per-sidecar limits (MaxConcurrent*Invocations); the global and
// named concurrency limits are accepted so Dapr files load.
type Workflow struct {
	MaxConcurrentWorkflowInvocations       int32                   `yaml:"maxConcurrentWorkflowInvocations,omitempty"`
	MaxConcurrentActivityInvocations       int32                   `yaml:"maxConcurrentActivityInvocations,omitempty"`
	GlobalMaxConcurrentWorkflowInvocations *int32                  `yaml:"globalMaxConcurrentWorkflowInvocations,omitempty"`
	GlobalMaxConcurrentActivityInvocations *int32                  `yaml:"globalMaxConcurrentActivityInvocations,omitempty"`
	WorkflowConcurrencyLimits              []NamedConcurrencyLimit `yaml:"workflowConcurrencyLimits,omitempty"`
	ActivityConcurrencyLimits              []NamedConcurrencyLimit `yaml:"activityConcurrencyLimits,omitempty"`
	// StateRetentionPolicy, if set, has the sidecar purge an instance's
	// state some time after it ends.
	StateRetentionPolicy *StateRetentionPolicy `yaml:"stateRetentionPolicy,omitempty"`
}

// NamedConcurrencyLimit limits the concurrent runs of one workflow or
// activity name.
type NamedConcurrencyLimit struct {
	Name          *string `yaml:"name"`
	MaxConcurrent *int32  `yaml:"maxConcurrent"`
}

// StateRetentionPolicy says how long the state of a workflow instance that
// ended is kept, by how it ended; a status's own duration wins over
// AnyTerminal, "0s" purges at once, and an instance no duration applies to
// is kept until purged by hand. Absent fields are nil.
type StateRetentionPolicy struct {
	AnyTerminal *Duration `yaml:"anyTerminal,omitempty"`
	Completed   *Duration `yaml:"completed,omitempty"`
	Failed      *Duration `yaml:"failed,omitempty"`
	Terminated  *Duration `yaml:"terminated,omitempty"`
}

// Pipeline is an HTTP middleware pipeline: middleware.http components, in
// order (proxy/middleware runs it).
type Pipeline struct {
	Handlers []Handler `yaml:"handlers,omitempty"`
}

// Handler is one middleware entry of a Pipeline.
type Handler struct {
	Name     string   `yaml:"name,omitempty"`
	Type     string   `yaml:"type,omitempty"`
	Version  string   `yaml:"version,omitempty"`
	Selector Selector `yaml:"selector,omitempty"`
}

// Selector narrows the requests a Handler applies to.
type Selector struct {
	Fields []SelectorField `yaml:"fields,omitempty"`
}

// SelectorField is one field=value match.
type SelectorField struct {
	Field string `yaml:"field"`
	Value string `yaml:"value"`
}

// Tracing configures distributed tracing. SamplingRate "" or "0" means off.
type Tracing struct {
	SamplingRate string `yaml:"samplingRate,omitempty"`
	Stdout       bool   `yaml:"stdout,omitempty"`
	Zipkin       Zipkin `yaml:"zipkin,omitempty"`
	Otel         Otel   `yaml:"otel,omitempty"`
}

// Zipkin is the Zipkin exporter.
type Zipkin struct {
	EndpointAddress string `yaml:"endpointAddress,omitempty"`
}

// Otel is the OTLP exporter.
type Otel struct {
	Protocol        string `yaml:"protocol,omitempty"` // grpc | http
	EndpointAddress string `yaml:"endpointAddress,omitempty"`
	// IsSecure defaults to true when unset; use Secure().
	IsSecure *bool    `yaml:"isSecure,omitempty"`
	Headers  Headers  `yaml:"headers,omitempty"`
	Timeout  Duration `yaml:"timeout,omitempty"`
}

// Secure reports whether the OTLP connection uses TLS (default true).
func (o Otel) Secure() bool { return o.IsSecure == nil || *o.IsSecure }

// Header is one exporter request header.
type Header struct {
	Name  string
	Value string
}

// Headers accepts every form Dapr users write: a list of "name=value"
// strings (Dapr self-hosted), a list of {name, value} objects (the CRD form),
// or a plain map.
type Headers []Header

// UnmarshalYAML implements yaml.Unmarshaler.
func (h *Headers) UnmarshalYAML(n *yaml.Node) error {
	var out Headers
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*h = nil
			return nil
		}
		// OTEL_EXPORTER_OTLP_HEADERS style: "a=b,c=d".
		for part := range strings.SplitSeq(n.Value, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			hd, err := headerFromPair(part, n.Line)
			if err != nil {
				return err
			}
			out = append(out, hd)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, Header{Name: n.Content[i].Value, Value: n.Content[i+1].Value})
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			switch item.Kind {
			case yaml.ScalarNode:
				hd, err := headerFromPair(item.Value, item.Line)
				if err != nil {
					return err
				}
				out = append(out, hd)
			case yaml.MappingNode:
				var nv struct {
					Name  string `yaml:"name"`
					Value string `yaml:"value"`
				}
				if err := item.Decode(&nv); err != nil {
					return fmt.Errorf("line %d: tracing.otel.headers entry: %w", item.Line, err)
				}
				out = append(out, Header{Name: nv.Name, Value: nv.Value})
			default:
				return fmt.Errorf("line %d: tracing.otel.headers entries must be \"name=value\" strings or {name, value} objects", item.Line)
			}
		}
	default:
		return fmt.Errorf("line %d: tracing.otel.headers must be a list of \"name=value\" strings or {name, value} objects", n.Line)
	}
	*h = out
	return nil
}

func headerFromPair(s string, line int) (Header, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return Header{}, fmt.Errorf("line %d: tracing.otel.headers entry %q: want name=value", line, s)
	}
	return Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)}, nil
}

// Duration is a duration written in Go syntax ("24h", "15m", "500ms").
// It is kept as text so that Validate can name the field of a bad value;
// Parse converts it.
type Duration string

// Parse returns the duration; "" is 0.
func (d Duration) Parse() (time.Duration, error) {
	if d == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(strings.TrimSpace(string(d)))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write it like 24h, 15m or 500ms", string(d))
	}
	return v, nil
}

// ParseSet parses an optional duration: nil if d is nil (the field is
// absent), as "" is not the same as unset there.
func (d *Duration) ParseSet() (*time.Duration, error) {
	if d == nil {
		return nil, nil
	}
	v, err := d.Parse()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// Metrics configures the Prometheus metrics.
type Metrics struct {
	// Enabled defaults to true when unset; use Configuration.MetricsEnabled.
	Enabled          *bool       `yaml:"enabled,omitempty"`
	RecordErrorCodes *bool       `yaml:"recordErrorCodes,omitempty"`
	HTTP             MetricsHTTP `yaml:"http,omitempty"`
	// LatencyDistributionBuckets are histogram bucket bounds in milliseconds;
	// empty means Dapr's defaults.
	LatencyDistributionBuckets []int         `yaml:"latencyDistributionBuckets,omitempty"`
	Rules                      []MetricsRule `yaml:"rules,omitempty"`
}

// MetricsHTTP tunes HTTP server metrics.
type MetricsHTTP struct {
	IncreasedCardinality *bool    `yaml:"increasedCardinality,omitempty"`
	PathMatching         []string `yaml:"pathMatching,omitempty"`
	ExcludeVerbs         *bool    `yaml:"excludeVerbs,omitempty"`
}

// MetricsRule rewrites label values of one metric.
type MetricsRule struct {
	Name   string        `yaml:"name,omitempty"`
	Labels []MetricLabel `yaml:"labels,omitempty"`
}

// MetricLabel maps replacement values to regular expressions.
type MetricLabel struct {
	Name  string            `yaml:"name,omitempty"`
	Regex map[string]string `yaml:"regex,omitempty"`
}

// MTLS configures workload identity.
type MTLS struct {
	Enabled                 bool             `yaml:"enabled,omitempty"`
	WorkloadCertTTL         Duration         `yaml:"workloadCertTTL,omitempty"`
	AllowedClockSkew        Duration         `yaml:"allowedClockSkew,omitempty"`
	SentryAddress           string           `yaml:"sentryAddress,omitempty"`
	ControlPlaneTrustDomain string           `yaml:"controlPlaneTrustDomain,omitempty"`
	TokenValidators         []TokenValidator `yaml:"tokenValidators,omitempty"`
}

// TokenValidator is a Sentry token validator (used by sentry, not daprd).
type TokenValidator struct {
	Name    string         `yaml:"name"`
	Options map[string]any `yaml:"options,omitempty"`
}

// Secrets scopes access to secret stores.
type Secrets struct {
	Scopes []SecretsScope `yaml:"scopes,omitempty"`
}

// SecretsScope limits which secrets of one store the app may read.
type SecretsScope struct {
	StoreName      string   `yaml:"storeName,omitempty"`
	DefaultAccess  string   `yaml:"defaultAccess,omitempty"` // allow (default) | deny
	AllowedSecrets []string `yaml:"allowedSecrets,omitempty"`
	DeniedSecrets  []string `yaml:"deniedSecrets,omitempty"`
}

// AccessControl is the service-invocation ACL, evaluated on the callee.
type AccessControl struct {
	DefaultAction string      `yaml:"defaultAction,omitempty"`
	TrustDomain   string      `yaml:"trustDomain,omitempty"`
	Policies      []AppPolicy `yaml:"policies,omitempty"`
}

// AppPolicy is the ACL for one calling app.
type AppPolicy struct {
	AppID         string      `yaml:"appId,omitempty"`
	DefaultAction string      `yaml:"defaultAction,omitempty"`
	TrustDomain   string      `yaml:"trustDomain,omitempty"`
	Namespace     string      `yaml:"namespace,omitempty"`
	Operations    []Operation `yaml:"operations,omitempty"`
}

// Operation is one rule: a method path ("/orders/*"), optional HTTP verbs,
// and the action.
type Operation struct {
	Name     string   `yaml:"name,omitempty"`
	HTTPVerb []string `yaml:"httpVerb,omitempty"`
	Action   string   `yaml:"action,omitempty"`
}

// NameResolution selects the name resolution component. Configuration is
// free-form and handed to the resolver.
type NameResolution struct {
	Component     string `yaml:"component,omitempty"`
	Version       string `yaml:"version,omitempty"`
	Configuration any    `yaml:"configuration,omitempty"`
}

// Feature toggles a preview feature.
type Feature struct {
	Name    string `yaml:"name"`
	Enabled bool   `yaml:"enabled"`
}

// API restricts which Dapr APIs the app may call.
type API struct {
	Allowed []APIRule `yaml:"allowed,omitempty"`
	Denied  []APIRule `yaml:"denied,omitempty"`
}

// APIRule names one API, e.g. {name: state, version: v1.0, protocol: http}.
type APIRule struct {
	Name     string `yaml:"name"`
	Version  string `yaml:"version"`
	Protocol string `yaml:"protocol,omitempty"` // http or grpc; Dapr 1.18 applies a rule without a protocol to neither
}

// Components restricts which component types may be loaded.
type Components struct {
	// Deny lists component types ("state.redis") or type/version
	// ("state.redis/v1") that must not be initialized.
	Deny []string `yaml:"deny,omitempty"`
}

// Logging configures API logging.
type Logging struct {
	APILogging APILogging `yaml:"apiLogging,omitempty"`
}

// APILogging is the default for --enable-api-logging and its details.
type APILogging struct {
	Enabled          bool `yaml:"enabled,omitempty"`
	ObfuscateURLs    bool `yaml:"obfuscateURLs,omitempty"`
	OmitHealthChecks bool `yaml:"omitHealthChecks,omitempty"`
}

// Wasm is accepted for compatibility; Tandem does not run WebAssembly.
type Wasm struct {
	StrictSandbox bool `yaml:"strictSandbox,omitempty"`
}

// Warning is a non-fatal finding about a configuration file.
type Warning struct {
	Source  string // file
	Line    int    // 0 when unknown
	Path    string // field path, e.g. spec.tracing.samplingrate
	Message string
}

func (w Warning) String() string {
	var b strings.Builder
	b.WriteString(w.Source)
	if w.Line > 0 {
		fmt.Fprintf(&b, ":%d", w.Line)
	}
	if w.Path != "" {
		b.WriteString(": ")
		b.WriteString(w.Path)
	}
	b.WriteString(": ")
	b.WriteString(w.Message)
	return b.String()
}
