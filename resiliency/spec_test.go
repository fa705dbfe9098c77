package resiliency

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const fullYAML = `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
  namespace: default
  labels: {team: a}
scopes: [checkout, orders]
spec:
  policies:
    timeouts:
      general: 5s
      important: 60s
      ms: 250
    retries:
      pubsubRetry:
        policy: constant
        duration: 5s
        maxRetries: 10
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
      retry5xxOnly:
        policy: constant
        duration: 1s
        maxRetries: 3
        matching:
          httpStatusCodes: "429,500-599"
          gRPCStatusCodes: "1-4,8-11,13,14"
    circuitBreakers:
      simpleCB:
        maxRequests: 1
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures > 8
      pubsubCB:
        trip: "requests > 10 && totalFailures / requests >= 0.5"
  targets:
    apps:
      appB:
        timeout: general
        retry: retryForever
        circuitBreaker: simpleCB
    actors:
      myActorType:
        timeout: general
        retry: retryForever
        circuitBreaker: simpleCB
        circuitBreakerScope: both
        circuitBreakerCacheSize: 5000
    components:
      statestore1:
        outbound:
          timeout: general
          retry: retryForever
          circuitBreaker: simpleCB
      pubsub1:
        inbound:
          timeout: general
          retry: pubsubRetry
          circuitBreaker: pubsubCB
`

func TestParseFull(t *testing.T) {
	docs, warns, err := Parse("res.yaml", []byte(fullYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d docs", len(docs))
	}
	d := docs[0]
	if d.File != "res.yaml" || d.Metadata.Name != "myresiliency" || len(d.Scopes) != 2 {
		t.Errorf("doc = %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	c, err := compileAll(docs)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.timeouts["ms"]; got != 250*time.Millisecond {
		t.Errorf("integer timeout = %v, want 250ms", got)
	}
	rf := c.retries["retryForever"]
	if rf.Policy != Exponential || rf.MaxInterval != 15*time.Second || rf.MaxRetries != -1 || rf.Duration != 5*time.Second {
		t.Errorf("retryForever = %+v", rf)
	}
	m := c.retries["retry5xxOnly"].Matching
	if len(m.HTTP) != 2 || m.HTTP[1] != (CodeRange{500, 599}) || len(m.GRPC) != 4 {
		t.Errorf("matching = %+v", m)
	}
	cb := c.breakers["simpleCB"]
	if cb.MaxRequests != 1 || cb.Interval != 8*time.Second || cb.Timeout != 45*time.Second || cb.Trip.String() != "consecutiveFailures > 8" {
		t.Errorf("simpleCB = %+v", cb)
	}
	def := c.breakers["pubsubCB"]
	if def.MaxRequests != 1 || def.Interval != 0 || def.Timeout != 60*time.Second {
		t.Errorf("pubsubCB defaults = %+v", def)
	}
}

func TestParseDocuments(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		docs      int
		warnPaths []string
		wantErr   string
	}{
		{name: "other kinds skipped", yaml: "kind: Component\nspec: {type: state.redis}\n---\nkind: Resiliency\nmetadata: {name: a}\n---\n- a list\n", docs: 1},
		{name: "two resiliency docs", yaml: "kind: Resiliency\n---\nkind: Resiliency\n", docs: 2},
		{name: "empty file", yaml: "", docs: 0},
		{name: "unknown fields warned", yaml: "kind: Resiliency\nspec:\n  policies:\n    retries:\n      r:\n        maxRetires: 3\n  targetz: {}\n",
			docs: 1, warnPaths: []string{"spec.policies.retries.r.maxRetires", "spec.targetz"}},
		{name: "metadata extras fine", yaml: "kind: Resiliency\nmetadata: {name: a, uid: x, annotations: {a: b}}\nstatus: {}\n", docs: 1},
		{name: "bad yaml", yaml: "kind: Resiliency\nspec: [", wantErr: "parse YAML"},
		{name: "wrong type", yaml: "kind: Resiliency\nspec:\n  policies:\n    retries:\n      r:\n        maxRetries: lots\n", wantErr: `decode Resiliency`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, warns, err := Parse("f.yaml", []byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "f.yaml: ") {
					t.Fatalf("err = %v, want f.yaml: ...%s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != tt.docs {
				t.Errorf("docs = %d, want %d", len(docs), tt.docs)
			}
			var paths []string
			for _, w := range warns {
				paths = append(paths, w.Path)
				if w.File != "f.yaml" || w.Line == 0 {
					t.Errorf("warning without location: %+v", w)
				}
			}
			if strings.Join(paths, ",") != strings.Join(tt.warnPaths, ",") {
				t.Errorf("warnings = %v, want %v", paths, tt.warnPaths)
			}
		})
	}
}

// validateCases is shared by TestValidate and the FuzzParse seeds.
var validateCases = []struct {
	name string
	spec string
	want []string // substrings, each must appear; empty: valid
}{
	{name: "valid minimal", spec: "policies: {timeouts: {t: 1s}}\ntargets: {apps: {a: {timeout: t}}}"},
	{name: "misspelled retry", spec: "policies: {retries: {retryForever: {maxRetries: -1}}}\ntargets: {apps: {orders: {retry: retryForver}}}",
		want: []string{`r.yaml: spec.targets.apps.orders.retry: no retry policy named "retryForver"; defined: retryForever`}},
	{name: "missing timeout and breaker", spec: "targets: {components: {s: {outbound: {timeout: x, circuitBreaker: y}}}}",
		want: []string{`spec.targets.components.s.outbound.timeout: no timeout policy named "x"; defined: (none)`,
			`spec.targets.components.s.outbound.circuitBreaker: no circuit breaker policy named "y"`}},
	{name: "builtin retry referenced", spec: "targets: {apps: {a: {retry: DaprBuiltInServiceRetries}}}"},
	{name: "bad duration", spec: "policies: {timeouts: {t: 5 seconds}}", want: []string{"spec.policies.timeouts.t: bad duration"}},
	{name: "negative duration", spec: "policies: {timeouts: {t: -5s}}", want: []string{"spec.policies.timeouts.t: negative"}},
	{name: "bad policy", spec: "policies: {retries: {r: {policy: linear}}}", want: []string{`spec.policies.retries.r.policy: is "linear"`}},
	{name: "maxRetries -2", spec: "policies: {retries: {r: {maxRetries: -2}}}", want: []string{"spec.policies.retries.r.maxRetries: is -2"}},
	{name: "zero maxInterval", spec: "policies: {retries: {r: {maxInterval: 0s}}}", want: []string{"maxInterval: must be greater than 0"}},
	{name: "http codes out of range", spec: "policies: {retries: {r: {matching: {httpStatusCodes: '429,600'}}}}", want: []string{"matching.httpStatusCodes: \"600\" is outside 100-599"}},
	{name: "grpc backwards", spec: "policies: {retries: {r: {matching: {gRPCStatusCodes: '8-2'}}}}", want: []string{"matching.gRPCStatusCodes: range \"8-2\" runs backwards"}},
	{name: "grpc junk", spec: "policies: {retries: {r: {matching: {gRPCStatusCodes: 'a-b'}}}}", want: []string{"bad code"}},
	{name: "bad trip", spec: "policies: {circuitBreakers: {c: {trip: 'failures > 5'}}}", want: []string{`spec.policies.circuitBreakers.c.trip: "failures > 5": unknown name "failures"`}},
	{name: "numeric trip", spec: "policies: {circuitBreakers: {c: {trip: 'consecutiveFailures + 1'}}}", want: []string{"not a condition"}},
	{name: "negative maxRequests", spec: "policies: {circuitBreakers: {c: {maxRequests: -1}}}", want: []string{"maxRequests: is -1"}},
	{name: "protected builtin", spec: "policies: {retries: {DaprBuiltInActorNotFoundRetries: {}}}", want: []string{"protected"}},
	{name: "actor scope", spec: "policies: {circuitBreakers: {c: {}}}\ntargets: {actors: {t: {circuitBreaker: c}}}", want: []string{"circuitBreakerScope: is required"}},
	{name: "several errors joined", spec: "policies: {timeouts: {a: x, b: y}}", want: []string{"timeouts.a", "timeouts.b"}},
}

func TestValidate(t *testing.T) {
	for _, tt := range validateCases {
		t.Run(tt.name, func(t *testing.T) {
			src := "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nspec:\n" + indent(tt.spec)
			docs, _, err := Parse("r.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			err = docs[0].Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want %q", tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != "r.yaml" {
				t.Errorf("error is not a located FieldError: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

func TestValidateAllAcrossFiles(t *testing.T) {
	a := mustParse(t, "a.yaml", "kind: Resiliency\nspec: {policies: {retries: {r: {maxRetries: 2}}}}")
	b := mustParse(t, "b.yaml", "kind: Resiliency\nspec: {targets: {apps: {x: {retry: r}}}}")
	if err := b.Validate(); err == nil {
		t.Error("b alone should not validate")
	}
	if err := ValidateAll(a, b); err != nil {
		t.Errorf("a+b: %v", err)
	}
}

func mustParse(t testing.TB, file, src string) *Resiliency {
	t.Helper()
	docs, _, err := Parse(file, []byte(src))
	if err != nil || len(docs) != 1 {
		t.Fatalf("parse %s: %v (%d docs)", file, err, len(docs))
	}
	return docs[0]
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fullYAML))
	for _, c := range validateCases {
		f.Add([]byte("kind: Resiliency\nspec:\n" + indent(c.spec)))
	}
	for _, s := range []string{
		"kind: Resiliency\nspec: {policies: {timeouts: {t: 100}}}",
		"kind: Resiliency\nspec: {policies: {retries: {r: {policy: exponential, maxInterval: 1ms, matching: {httpStatusCodes: '1-2-3'}}}}}",
		"kind: Resiliency\nspec: {policies: {circuitBreakers: {c: {trip: '((requests > 1) || !(totalFailures % 0 == 1))'}}}}",
		"kind: Resiliency\nscopes: [a]\nspec: {targets: {apps: {a: {retry: nope}}}}",
		"kind: Resiliency\na: &x {b: *x}",
		"---\n---\nkind: Resiliency\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, d := range docs {
			_ = d.Validate()
		}
		s, err := Build("a", docs)
		if err != nil {
			return
		}
		for app := range s.c.apps {
			_ = s.ForApp(app)
		}
		_ = s.ForComponentOutbound("x", Statestore)
	})
}

func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("kind: Resiliency\nx0: &a0 [1,1,1,1,1,1,1,1,1]\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&b, "x%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Parse("bomb.yaml", []byte(b.String())) // error or not, it must return
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Parse did not return on an alias bomb")
	}
}
