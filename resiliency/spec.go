package resiliency

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Kind and APIVersion identify a Resiliency document.
const (
	Kind       = "Resiliency"
	APIVersion = "dapr.io/v1alpha1"
)

// Resiliency is one Resiliency document as written in YAML
// (Dapr's pkg/apis/resiliency/v1alpha1 types).
type Resiliency struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   Metadata       `yaml:"metadata"`
	Spec       Spec           `yaml:"spec"`
	Scopes     []string       `yaml:"scopes"`
	Extra      map[string]any `yaml:",inline"` // e.g. status; ignored

	// File names the source in messages; set by Parse, never read from YAML.
	File string `yaml:"-"`
}

// Metadata is the part of Kubernetes object metadata Tandem reads.
type Metadata struct {
	Name      string         `yaml:"name"`
	Namespace string         `yaml:"namespace"`
	Extra     map[string]any `yaml:",inline"` // labels, annotations, uid...
}

// Spec holds the named policies and the targets that use them.
type Spec struct {
	Policies Policies `yaml:"policies"`
	Targets  Targets  `yaml:"targets"`
}

// Policies are named templates referenced from Targets.
type Policies struct {
	// Timeouts maps a name to a duration ("5s", or an integer in ms).
	Timeouts        map[string]string             `yaml:"timeouts"`
	Retries         map[string]RetrySpec          `yaml:"retries"`
	CircuitBreakers map[string]CircuitBreakerSpec `yaml:"circuitBreakers"`
}

// RetrySpec is spec.policies.retries.<name>. Empty strings and nil pointers
// mean "use Dapr's default".
type RetrySpec struct {
	Policy      string        `yaml:"policy"`      // constant (default) | exponential
	Duration    string        `yaml:"duration"`    // constant interval, default 5s
	MaxInterval string        `yaml:"maxInterval"` // exponential cap, default 60s
	MaxRetries  *int          `yaml:"maxRetries"`  // default -1: retry until the context ends
	Matching    *MatchingSpec `yaml:"matching"`
}

// MatchingSpec lists the status codes that are retried, e.g. "429,500-599".
type MatchingSpec struct {
	HTTPStatusCodes string `yaml:"httpStatusCodes"`
	GRPCStatusCodes string `yaml:"gRPCStatusCodes"`
}

// CircuitBreakerSpec is spec.policies.circuitBreakers.<name>.
type CircuitBreakerSpec struct {
	MaxRequests *int   `yaml:"maxRequests"` // half-open trial calls, default 1
	Interval    string `yaml:"interval"`    // closed-state count reset period, default 0 (never)
	Timeout     string `yaml:"timeout"`     // open period before half-open, default 60s
	Trip        string `yaml:"trip"`        // default "consecutiveFailures > 5"
}

// Targets maps apps, actors and components to policy names.
type Targets struct {
	Apps       map[string]PolicyNames          `yaml:"apps"`
	Actors     map[string]ActorPolicyNames     `yaml:"actors"`
	Components map[string]ComponentPolicyNames `yaml:"components"`
}

// PolicyNames names the timeout, retry and circuit breaker of a target;
// an empty name means none.
type PolicyNames struct {
	Timeout        string `yaml:"timeout"`
	Retry          string `yaml:"retry"`
	CircuitBreaker string `yaml:"circuitBreaker"`
	// CircuitBreakerCacheSize is accepted for Dapr compatibility; Tandem keeps
	// one breaker per target, so it has no effect.
	CircuitBreakerCacheSize int `yaml:"circuitBreakerCacheSize"`
}

// ActorPolicyNames is spec.targets.actors.<type>.
type ActorPolicyNames struct {
	Timeout                 string `yaml:"timeout"`
	Retry                   string `yaml:"retry"`
	CircuitBreaker          string `yaml:"circuitBreaker"`
	CircuitBreakerScope     string `yaml:"circuitBreakerScope"`
	CircuitBreakerCacheSize int    `yaml:"circuitBreakerCacheSize"`
}

// ComponentPolicyNames holds a component's two directions: outbound calls
// from the sidecar to the store or broker, inbound deliveries to the app.
type ComponentPolicyNames struct {
	Outbound PolicyNames `yaml:"outbound"`
	Inbound  PolicyNames `yaml:"inbound"`
}

// AppliesTo reports whether the document's scopes include appID; a document
// without scopes applies to every app.
func (r *Resiliency) AppliesTo(appID string) bool {
	return len(r.Scopes) == 0 || slices.Contains(r.Scopes, appID)
}

// Warning is a problem that does not stop loading, such as an unknown field
// (Dapr ignores those; so does Tandem, but says so).
type Warning struct {
	File    string
	Line    int
	Path    string
	Message string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Path, w.Message)
}

// maxDocuments bounds the YAML documents read from one file.
const maxDocuments = 1000

// Parse decodes every Resiliency document in data (a file may hold several
// YAML documents; other kinds are skipped, as a resources directory mixes
// Components, Subscriptions and Resiliency). file names the source in
// messages. Unknown fields come back as warnings. Parse checks only YAML
// shape: call Validate or Build for the meaning.
func Parse(file string, data []byte) ([]*Resiliency, []Warning, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		docs     []*Resiliency
		warnings []Warning
	)
	for i := 0; ; i++ {
		if i >= maxDocuments {
			return nil, nil, fmt.Errorf("%s: more than %d YAML documents; split the file", file, maxDocuments)
		}
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: parse YAML: %w", file, err)
		}
		var head struct {
			Kind string `yaml:"kind"`
		}
		if err := n.Decode(&head); err != nil || head.Kind != Kind {
			continue // not a mapping, or another resource kind
		}
		r := &Resiliency{File: file}
		if err := n.Decode(r); err != nil {
			return nil, nil, fmt.Errorf("%s: decode Resiliency %q: %w; check the field types against Dapr's Resiliency spec", file, docName(&n), err)
		}
		warnings = append(warnings, unknownFields(file, &n)...)
		docs = append(docs, r)
	}
	return docs, warnings, nil
}

func docName(n *yaml.Node) string {
	var m struct {
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	_ = n.Decode(&m)
	return m.Metadata.Name
}
