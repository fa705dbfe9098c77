package config

import (
	"errors"
	"strings"
	"testing"
)

// validateCases are also seeds of FuzzParse.
var validateCases = []struct {
	name string
	yaml string
	want []string // substrings of the error; nil = valid
}{
	{
		name: "valid ACL",
		yaml: `kind: Configuration
spec:
  accessControl:
    defaultAction: DENY
    policies:
    - {appId: a, trustDomain: public, namespace: default, operations: [{name: /x, httpVerb: ["*"], action: Allow}]}
`,
	},
	{
		name: "bad action names file, path and allowed values",
		yaml: `kind: Configuration
spec:
  accessControl:
    policies:
    - {appId: a, trustDomain: public, namespace: default}
    - appId: b
      trustDomain: public
      namespace: default
      operations:
      - {name: /x, action: permit}
`,
		want: []string{`cfg.yaml: spec.accessControl.policies[1].operations[0].action: "permit" is not valid; use one of allow|deny`},
	},
	{
		name: "bad default actions and verbs",
		yaml: `kind: Configuration
spec:
  accessControl:
    defaultAction: maybe
    policies:
    - {appId: a, trustDomain: public, namespace: default, defaultAction: x, operations: [{name: /y, httpVerb: [get], action: allow}]}
`,
		want: []string{
			"spec.accessControl.defaultAction: \"maybe\"",
			"spec.accessControl.policies[0].defaultAction: \"x\"",
			`spec.accessControl.policies[0].operations[0].httpVerb[0]: "get" is not an HTTP verb`,
		},
	},
	{
		name: "policy missing required fields",
		yaml: "kind: Configuration\nspec: {accessControl: {policies: [{operations: [{action: allow}]}]}}\n",
		want: []string{
			"spec.accessControl.policies[0].appId: is required",
			"spec.accessControl.policies[0].trustDomain: is required",
			"spec.accessControl.policies[0].namespace: is required",
			"spec.accessControl.policies[0].operations[0].name: is required",
		},
	},
	{
		name: "bad durations",
		yaml: "kind: Configuration\nspec:\n  mtls: {workloadCertTTL: 1 day, allowedClockSkew: -1m}\n  tracing: {otel: {timeout: soon}}\n",
		want: []string{
			`spec.mtls.workloadCertTTL: "1 day" is not a duration; write it like 24h`,
			`spec.mtls.allowedClockSkew: "-1m" must be greater than zero`,
			`spec.tracing.otel.timeout: "soon" is not a duration`,
		},
	},
	{name: "zero ttl", yaml: "kind: Configuration\nspec: {mtls: {workloadCertTTL: 0s}}\n", want: []string{"spec.mtls.workloadCertTTL"}},
	{name: "sampling rate too high", yaml: "kind: Configuration\nspec: {tracing: {samplingRate: \"2\"}}\n", want: []string{`spec.tracing.samplingRate: "2" is not a sampling rate; write a number between "0"`}},
	{name: "sampling rate words", yaml: "kind: Configuration\nspec: {tracing: {samplingRate: all}}\n", want: []string{"spec.tracing.samplingRate"}},
	{name: "sampling rate NaN", yaml: "kind: Configuration\nspec: {tracing: {samplingRate: NaN}}\n", want: []string{"spec.tracing.samplingRate"}},
	{name: "sampling rate fraction ok", yaml: "kind: Configuration\nspec: {tracing: {samplingRate: \"0.0001\"}}\n"},
	{name: "zipkin not a URL", yaml: "kind: Configuration\nspec: {tracing: {zipkin: {endpointAddress: localhost:9411}}}\n", want: []string{"spec.tracing.zipkin.endpointAddress"}},
	{name: "otel protocol", yaml: "kind: Configuration\nspec: {tracing: {otel: {protocol: udp}}}\n", want: []string{"spec.tracing.otel.protocol: \"udp\" is not valid; use one of grpc|http"}},
	{
		name: "secrets scopes",
		yaml: "kind: Configuration\nspec:\n  secrets:\n    scopes:\n    - {storeName: s, defaultAccess: nope}\n    - {storeName: s}\n    - {defaultAccess: deny}\n",
		want: []string{
			`spec.secrets.scopes[0].defaultAccess: "nope" is not valid; use one of allow|deny`,
			`spec.secrets.scopes[1].storeName: "s" is already scoped by spec.secrets.scopes[0]`,
			"spec.secrets.scopes[2].storeName: is required",
		},
	},
	{name: "buckets not increasing", yaml: "kind: Configuration\nspec: {metrics: {latencyDistributionBuckets: [5, 5, 1]}}\n", want: []string{"spec.metrics.latencyDistributionBuckets[1]", "spec.metrics.latencyDistributionBuckets[2]"}},
	{name: "negative bucket", yaml: "kind: Configuration\nspec: {metric: {latencyDistributionBuckets: [-1]}}\n", want: []string{"spec.metric.latencyDistributionBuckets[0]"}},
	{
		name: "api rules",
		yaml: "kind: Configuration\nspec: {api: {allowed: [{name: state}], denied: [{name: x, version: v1.0, protocol: soap}]}}\n",
		want: []string{"spec.api.allowed[0].version: is required", `spec.api.denied[0].protocol: "soap" is not valid; use one of http|grpc`},
	},
	{name: "retention policy ok", yaml: "kind: Configuration\nspec: {workflow: {stateRetentionPolicy: {anyTerminal: 168h, completed: 0s, failed: 1s, terminated: 30m}}}\n"},
	{
		name: "retention policy bad durations",
		yaml: "kind: Configuration\nspec: {workflow: {stateRetentionPolicy: {anyTerminal: 1 week, failed: -1s}}}\n",
		want: []string{
			`spec.workflow.stateRetentionPolicy.anyTerminal: "1 week" is not a duration`,
			`spec.workflow.stateRetentionPolicy.failed: "-1s" is negative`,
		},
	},
	{name: "empty feature and deny", yaml: "kind: Configuration\nspec: {features: [{enabled: true}], components: {deny: [\"\"]}}\n", want: []string{"spec.features[0].name", "spec.components.deny[0]"}},
}

func TestValidate(t *testing.T) {
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "cfg.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error missing %q; got:\n%v", w, err)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Source != "cfg.yaml" || !strings.HasPrefix(fe.Path, "spec.") {
				t.Errorf("want a *FieldError naming file and path, got %#v", fe)
			}
		})
	}
}
