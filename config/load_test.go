package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseCases are also the seeds of FuzzParse.
var parseCases = []struct {
	name     string
	yaml     string
	wantErr  string   // substring; "" = success
	wantWarn []string // substrings, each must appear in some warning
	check    func(t *testing.T, c *Configuration)
}{
	{
		name: "minimal",
		yaml: "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: x}\nspec: {}\n",
		check: func(t *testing.T, c *Configuration) {
			if c.Metadata.Name != "x" || c.TrustDomain() != "public" || c.ACLDefaultAction() != "allow" {
				t.Errorf("got name %q td %q action %q", c.Metadata.Name, c.TrustDomain(), c.ACLDefaultAction())
			}
			if c.SamplingRate() != 0 || !c.MetricsEnabled() || c.Spec.MTLS.Enabled {
				t.Errorf("defaults: rate %v metrics %v mtls %v", c.SamplingRate(), c.MetricsEnabled(), c.Spec.MTLS.Enabled)
			}
			if c.Spec.NameResolution.Component != "" {
				t.Errorf("nameResolution default should be empty, got %q", c.Spec.NameResolution.Component)
			}
		},
	},
	{
		// The JSON the operator sends (metav1.Duration strings) and the
		// YAML of a self-hosted file read the same.
		name:     "workflow retention policy",
		yaml:     `{"kind": "Configuration", "spec": {"workflow": {"maxConcurrentWorkflowInvocations": 5, "stateRetentionPolicy": {"anyTerminal": "168h", "completed": "0s", "failed": "1s", "Terminated": "2s"}}}}`,
		wantWarn: []string{`spec.workflow.stateRetentionPolicy.Terminated: unknown field`, `did you mean "terminated"`},
		check: func(t *testing.T, c *Configuration) {
			r := c.Spec.Workflow.StateRetentionPolicy
			if r == nil || c.Spec.Workflow.MaxConcurrentWorkflowInvocations != 5 {
				t.Fatalf("workflow spec %+v", c.Spec.Workflow)
			}
			got := map[string]*time.Duration{}
			for k, d := range map[string]*Duration{"any": r.AnyTerminal, "completed": r.Completed, "failed": r.Failed, "terminated": r.Terminated} {
				v, err := d.ParseSet()
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				got[k] = v
			}
			if *got["any"] != 168*time.Hour || *got["completed"] != 0 || *got["failed"] != time.Second || got["terminated"] != nil {
				t.Errorf("durations %v", got)
			}
		},
	},
	{
		name:     "unknown fields are warnings with paths and suggestions",
		yaml:     "kind: Configuration\nspec:\n  tracing:\n    samplingrate: \"1\"\n  bogus: 1\n  accessControl:\n    policies:\n    - appId: a\n      operation: []\n",
		wantWarn: []string{`:4: spec.tracing.samplingrate: unknown field`, `did you mean "samplingRate"`, "spec.bogus: unknown field", "spec.accessControl.policies[0].operation: unknown field"},
		check: func(t *testing.T, c *Configuration) {
			if c.Spec.Tracing.SamplingRate != "" {
				t.Errorf("misspelled field must not be applied, got %q", c.Spec.Tracing.SamplingRate)
			}
		},
	},
	{
		name:     "multi-document picks the Configuration",
		yaml:     "kind: Component\nmetadata: {name: s}\nspec: {type: state.redis}\n---\nkind: Configuration\nmetadata: {name: c}\nspec: {accessControl: {trustDomain: td}}\n---\nkind: Configuration\nmetadata: {name: ignored}\n",
		wantWarn: []string{"only the first one"},
		check: func(t *testing.T, c *Configuration) {
			if c.Metadata.Name != "c" || c.TrustDomain() != "td" {
				t.Errorf("picked %q td %q", c.Metadata.Name, c.TrustDomain())
			}
		},
	},
	{
		name:    "no Configuration document",
		yaml:    "kind: Component\nspec: {type: state.redis}\n---\nkind: Subscription\n",
		wantErr: "no document with kind: Configuration (found kinds: Component, Subscription)",
	},
	{
		name:     "no kind is read as Configuration",
		yaml:     "spec:\n  accessControl: {trustDomain: x}\n",
		wantWarn: []string{"no kind"},
		check: func(t *testing.T, c *Configuration) {
			if c.TrustDomain() != "x" {
				t.Errorf("td %q", c.TrustDomain())
			}
		},
	},
	{name: "empty file", yaml: "", wantWarn: []string{"empty"}},
	{name: "only separators", yaml: "---\n---\n", wantWarn: []string{"empty"}},
	{name: "broken YAML", yaml: "kind: Configuration\nspec: [\n", wantErr: "invalid YAML"},
	{name: "top-level list", yaml: "- a\n- b\n", wantErr: "must be a YAML mapping"},
	{name: "wrong type", yaml: "kind: Configuration\nspec:\n  features: {name: x}\n", wantErr: "fix the value's type"},
	{
		name:     "other apiVersion is a warning",
		yaml:     "apiVersion: dapr.io/v2\nkind: Configuration\n",
		wantWarn: []string{"apiVersion"},
	},
	{
		name: "unquoted sampling rate and mtls durations",
		yaml: "kind: Configuration\nspec:\n  tracing: {samplingRate: 1}\n  mtls: {enabled: true, workloadCertTTL: 1h, allowedClockSkew: 0s}\n",
		check: func(t *testing.T, c *Configuration) {
			if c.SamplingRate() != 1 || c.WorkloadCertTTL() != time.Hour || c.AllowedClockSkew() != 0 || !c.Spec.MTLS.Enabled {
				t.Errorf("rate %v ttl %v skew %v", c.SamplingRate(), c.WorkloadCertTTL(), c.AllowedClockSkew())
			}
		},
	},
	{
		name: "otel headers in every form",
		yaml: "kind: Configuration\nspec:\n  tracing:\n    otel:\n      headers: [\"a=1\", {name: b, value: \"2\"}]\n",
		check: func(t *testing.T, c *Configuration) {
			want := Headers{{"a", "1"}, {"b", "2"}}
			if !reflect.DeepEqual(c.Spec.Tracing.Otel.Headers, want) {
				t.Errorf("headers %v", c.Spec.Tracing.Otel.Headers)
			}
			if !c.Spec.Tracing.Otel.Secure() {
				t.Error("isSecure must default to true")
			}
		},
	},
	{name: "otel headers csv string", yaml: "kind: Configuration\nspec: {tracing: {otel: {headers: \"a=1,b=2\"}}}\n"},
	{name: "otel headers map", yaml: "kind: Configuration\nspec: {tracing: {otel: {headers: {a: \"1\"}}}}\n"},
	{name: "otel headers bad entry", yaml: "kind: Configuration\nspec: {tracing: {otel: {headers: [\"novalue\"]}}}\n", wantErr: "want name=value"},
	{
		name: "legacy metric key merges under metrics",
		yaml: "kind: Configuration\nspec:\n  metric: {enabled: false, latencyDistributionBuckets: [1, 2]}\n  metrics: {latencyDistributionBuckets: [5]}\n",
		check: func(t *testing.T, c *Configuration) {
			if c.MetricsEnabled() {
				t.Error("metric.enabled false must carry over")
			}
			if !reflect.DeepEqual(c.Spec.Metrics.LatencyDistributionBuckets, []int{5}) {
				t.Errorf("buckets %v", c.Spec.Metrics.LatencyDistributionBuckets)
			}
		},
	},
	{
		name:     "anchors and merge keys",
		yaml:     "kind: Configuration\nspec:\n  accessControl:\n    policies:\n    - &p {appId: a, trustDomain: public, namespace: default}\n    - <<: *p\n      appId: b\n      typo: 1\n",
		wantWarn: []string{"spec.accessControl.policies[1].typo"},
		check: func(t *testing.T, c *Configuration) {
			if len(c.Spec.AccessControl.Policies) != 2 || c.Spec.AccessControl.Policies[1].Namespace != "default" {
				t.Errorf("policies %+v", c.Spec.AccessControl.Policies)
			}
		},
	},
	{
		name:     "a pipeline handler of another kind warns",
		yaml:     "kind: Configuration\nspec:\n  httpPipeline:\n    handlers: [{name: oauth, type: middleware.http.oauth2}, {name: x, type: state.redis}]\n",
		wantWarn: []string{"spec.httpPipeline.handlers[1].type"},
	},
	{
		name:     "empty action warns",
		yaml:     "kind: Configuration\nspec:\n  accessControl:\n    policies:\n    - {appId: a, trustDomain: public, namespace: default, operations: [{name: /x}]}\n    - {appId: a, trustDomain: public, namespace: default}\n",
		wantWarn: []string{"Dapr treats as deny", "only this later entry"},
	},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "test.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "test.yaml") {
					t.Errorf("error does not name the file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var all []string
			for _, w := range c.Warnings {
				all = append(all, w.String())
			}
			joined := strings.Join(all, "\n")
			for _, want := range tc.wantWarn {
				if !strings.Contains(joined, want) {
					t.Errorf("warnings missing %q; got:\n%s", want, joined)
				}
			}
			if len(tc.wantWarn) == 0 && len(all) > 0 {
				t.Errorf("unexpected warnings:\n%s", joined)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestLoadDaprInitConfig(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "dapr-init-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if c.Metadata.Name != "daprConfig" || c.SamplingRate() != 1 ||
		c.Spec.Tracing.Zipkin.EndpointAddress != "http://localhost:9411/api/v2/spans" {
		t.Errorf("got %+v", c)
	}
}

func TestLoadFullConfig(t *testing.T) {
	c, err := LoadFiles(nil, filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	s := c.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"samplingRate", c.SamplingRate(), 0.25},
		{"otel secure", s.Tracing.Otel.Secure(), false},
		{"otel timeout", s.Tracing.Otel.Timeout, Duration("10s")},
		{"otel headers", s.Tracing.Otel.Headers, Headers{{"api-key", "abc"}}},
		{"excludeVerbs", *s.Metrics.HTTP.ExcludeVerbs, true},
		{"ttl", c.WorkloadCertTTL(), 12 * time.Hour},
		{"skew", c.AllowedClockSkew(), 5 * time.Minute},
		{"cp td", s.MTLS.ControlPlaneTrustDomain, "cluster.local"},
		{"td", c.TrustDomain(), "acme.example"},
		{"acl default", c.ACLDefaultAction(), "deny"},
		{"verbs", s.AccessControl.Policies[0].Operations[0].HTTPVerb, []string{"POST", "GET"}},
		{"nr component", s.NameResolution.Component, "mdns"},
		{"nr config", s.NameResolution.Configuration.(map[string]any)["selfRegister"], true},
		{"HotReload off", c.FeatureEnabled("HotReload"), false},
		{"ActorStateTTL on", c.FeatureEnabled("ActorStateTTL"), true},
		{"default feature on", c.FeatureEnabled("WorkflowsRemoteActivityReminder"), true},
		{"unknown feature off", c.FeatureEnabled("Nope"), false},
		{"api allowed", len(s.API.Allowed), 2},
		{"api denied protocol", s.API.Denied[0].Protocol, "grpc"},
		{"deny", s.Components.Deny, []string{"bindings.smtp", "secretstores.local.env/v1"}},
		{"api logging", s.Logging.APILogging, APILogging{Enabled: true, ObfuscateURLs: true, OmitHealthChecks: true}},
		{"secret allowed", c.SecretAllowed("localsecretstore", "redis-password"), true},
		{"secret denied", c.SecretAllowed("localsecretstore", "other"), false},
		{"unscoped store", c.SecretAllowed("vault", "x"), true},
		{"metadata extra", c.Metadata.Extra["resourceVersion"], "12345"},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadMultiDocFile(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "multi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata.Name != "second" || c.TrustDomain() != "example.org" {
		t.Errorf("got name %q td %q", c.Metadata.Name, c.TrustDomain())
	}
}

func TestLoadFilesMergesAndExpandsEnv(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "kind: Configuration\nspec:\n  tracing: {samplingRate: \"${RATE}\"}\n  accessControl: {trustDomain: one}\n")
	write(b, "kind: Configuration\nspec:\n  accessControl: {trustDomain: two}\n  features: [{name: X, enabled: true}]\n")
	env := map[string]string{"RATE": "0.5"}
	c, err := LoadFiles(func(k string) string { return env[k] }, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.SamplingRate() != 0.5 || c.TrustDomain() != "two" || !c.FeatureEnabled("X") {
		t.Errorf("rate %v td %q X %v", c.SamplingRate(), c.TrustDomain(), c.FeatureEnabled("X"))
	}
	if !strings.Contains(c.Source, "a.yaml") || !strings.Contains(c.Source, "b.yaml") {
		t.Errorf("source %q", c.Source)
	}

	// A later file's features replace an earlier file's, as in daprd
	// (suite daprd/multipleconfigs).
	f1 := filepath.Join(dir, "f1.yaml")
	f2 := filepath.Join(dir, "f2.yaml")
	write(f1, "kind: Configuration\nspec:\n  features: [{name: Feature1, enabled: true}, {name: HotReload, enabled: false}]\n")
	write(f2, "kind: Configuration\nspec:\n  features: [{name: Feature2, enabled: true}]\n")
	c, err = LoadFiles(nil, f1, f2)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.EnabledFeatures(), []string{"Feature2", "HotReload", "WorkflowsRemoteActivityReminder"}; !slices.Equal(got, want) {
		t.Errorf("EnabledFeatures = %v, want %v", got, want)
	}
	c, err = LoadFiles(nil, f1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.EnabledFeatures(), []string{"Feature1", "WorkflowsRemoteActivityReminder"}; !slices.Equal(got, want) {
		t.Errorf("EnabledFeatures = %v, want %v", got, want)
	}

	if _, err := LoadFiles(nil, filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing file: %v", err)
	}
	d, err := LoadFiles(nil)
	if err != nil || d.TrustDomain() != "public" {
		t.Errorf("no files: %v %v", d, err)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.TrustDomain() != DefaultTrustDomain || c.WorkloadCertTTL() != 24*time.Hour ||
		c.AllowedClockSkew() != 15*time.Minute || c.SamplingRate() != 0 || !c.FeatureEnabled("HotReload") {
		t.Errorf("defaults wrong: %+v", c.Spec)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("default config must validate: %v", err)
	}
}
