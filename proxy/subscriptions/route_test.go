package subscriptions

import (
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

func TestRoute(t *testing.T) {
	sub, err := FromDeclarative(components.Subscription{
		Name: "s", PubsubName: "ps", Topic: "orders",
		Routes: components.Routes{
			Rules: []components.Rule{
				{Match: `event.type == "order.big"`, Path: "/big"},
				{Match: `has(event.data.amount) && event.data.amount > 100`, Path: "/amount"},
				{Match: `event.data.kind.startsWith("x")`, Path: "/x"},
			},
			Default: "/default",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ev      cloudevents.Event
		want    string
		wantErr bool
	}{
		{"type", cloudevents.Event{"type": "order.big"}, "/big", false},
		{"number", cloudevents.Event{"type": "t", "data": map[string]any{"amount": 150.0}}, "/amount", false},
		{"number low", cloudevents.Event{"type": "t", "data": map[string]any{"amount": 50.0, "kind": "y"}}, "/default", false},
		{"string func", cloudevents.Event{"type": "t", "data": map[string]any{"kind": "xyz"}}, "/x", false},
		{"missing field errors", cloudevents.Event{"type": "t", "data": map[string]any{}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := sub.Route(tt.ev)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && (!ok || got != tt.want) {
				t.Errorf("route = %q %v, want %q", got, ok, tt.want)
			}
		})
	}

	noDefault := &Subscription{PubsubName: "p", Topic: "t"}
	if err := noDefault.build([]components.Rule{{Match: `event.type == "a"`, Path: "/a"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := noDefault.Route(cloudevents.Event{"type": "b"}); ok || err != nil {
		t.Errorf("no rule matches: ok=%v err=%v", ok, err)
	}
}

func TestNewRuleErrors(t *testing.T) {
	for _, m := range []string{`event.type ==`, `"a string"`, `1 + 2`} {
		if _, err := NewRule(m, "/p"); err == nil {
			t.Errorf("NewRule(%q) should fail", m)
		}
	}
	if r, err := NewRule("  ", "/p"); err != nil || r.Match != "" {
		t.Errorf("blank match = %v, %v", r, err)
	}
}

func TestSubscriptionMetadata(t *testing.T) {
	s := &Subscription{Kind: Declarative, PubsubName: "p", Topic: "t", Metadata: map[string]string{"maxConcurrency": "4", "rawPayload": "true"}, Rules: []*Rule{{Match: "", Path: "/d"}}}
	if n, err := s.MaxConcurrency(); n != 4 || err != nil {
		t.Errorf("MaxConcurrency = %d, %v", n, err)
	}
	if !s.RawPayload() {
		t.Error("rawPayload")
	}
	s.Metadata["maxConcurrency"] = "0"
	if _, err := s.MaxConcurrency(); err == nil {
		t.Error("0 must be refused")
	}
	m := s.ToMetadata()
	if m.GetType().String() != "DECLARATIVE" || m.GetRules().GetRules()[0].GetPath() != "/d" {
		t.Errorf("metadata = %v", m)
	}
	o := *s
	if !s.Equal(&o) {
		t.Error("copy must be equal")
	}
	o.DeadLetterTopic = "dl"
	if s.Equal(&o) {
		t.Error("different dead letter topic must differ")
	}
}
