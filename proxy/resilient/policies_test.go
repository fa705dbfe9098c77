package resilient

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestPoliciesApply(t *testing.T) {
	p := NewPolicies("me", nil)
	if p.Set() == nil || p.Set().ForApp("target") != nil {
		t.Fatal("a new Policies must hold an empty Set")
	}
	if p.Set().BuiltIn("DaprBuiltInServiceRetries") == nil {
		t.Fatal("the built-in retries must be there without documents")
	}
	v1 := []components.Document{doc("a.yaml", `
policies:
  retries:
    r: {maxRetries: 2}
targets:
  apps:
    target: {retry: r}
`)}
	steps := []struct {
		name        string
		docs        []components.Document
		changed     bool
		errContains string
		maxRetries  int // of app "target"; -2: no policy
	}{
		{"first load", v1, true, "", 2},
		{"same documents: no-op", v1, false, "", 2},
		{"changed", []components.Document{doc("a.yaml", `
policies:
  retries:
    r: {maxRetries: 5}
targets:
  apps:
    target: {retry: r}
`)}, true, "", 5},
		{"broken YAML keeps the old set", []components.Document{doc("a.yaml", "policies: [\n")}, false, "previous policies stay in effect", 5},
		{"bad reference keeps the old set", []components.Document{doc("a.yaml", `
targets:
  apps:
    target: {retry: missing}
`)}, false, "previous policies stay in effect", 5},
		{"removed", nil, true, "", -2},
	}
	for _, s := range steps {
		changed, err := p.Apply(s.docs)
		if changed != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.name, changed, s.changed)
		}
		if (err == nil) != (s.errContains == "") || (err != nil && !strings.Contains(err.Error(), s.errContains)) {
			t.Errorf("%s: err = %v, want %q", s.name, err, s.errContains)
		}
		got := -2
		if r := p.Set().ForApp("target").Retry(); r != nil {
			got = r.MaxRetries
		}
		if got != s.maxRetries {
			t.Errorf("%s: maxRetries = %d, want %d", s.name, got, s.maxRetries)
		}
	}
}

func TestPoliciesNameInvalidDocument(t *testing.T) {
	var buf bytes.Buffer
	p := NewPolicies("me", slog.New(slog.NewTextHandler(&buf, nil)))
	_, err := p.Apply([]components.Document{doc("myresiliency.yaml", `policies:
  retries:
    DefaultAppRetryPolicy: {policy: constant, duration: 10ms, maxRetries: 3, matching: {httpStatusCodes: "11"}}
`)})
	if err == nil {
		t.Fatal("an out-of-range status code was accepted")
	}
	if !strings.Contains(buf.String(), "Could not read resiliency policy myresiliency") {
		t.Errorf("log does not name the document as daprd does:\n%s", buf.String())
	}
}
