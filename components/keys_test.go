package components

import (
	"testing"
)

// TestParseKeysIgnoreCase: Dapr matches resource field names without case
// ("Kind: Subscription", "pubsubName:"), so Tandem does too; the keys of a
// Subscription's own metadata map keep their spelling.
func TestParseKeysIgnoreCase(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantComp string
		wantSub  string
		wantMD   map[string]string
	}{
		{"Kind", "apiVersion: dapr.io/v2alpha1\nKind: Subscription\nmetadata:\n  name: s1\nspec:\n  pubsubname: ps\n  topic: a\n  routes:\n    default: /a\n",
			"", "a:/a", nil},
		{"field names", "APIVersion: dapr.io/v1alpha1\nKIND: Subscription\nMetadata:\n  Name: s1\nSpec:\n  pubsubName: ps\n  Topic: b\n  Route: /b\n  metadata:\n    rawPayload: \"true\"\n",
			"", "b:/b", map[string]string{"rawPayload": "true"}},
		{"component", "apiVersion: dapr.io/v1alpha1\nKind: Component\nmetadata:\n  name: ps\nspec:\n  Type: pubsub.in-memory\n  Version: v1\n  Metadata:\n  - Name: a\n    Value: b\n",
			"ps:pubsub.in-memory:a=b", "", nil},
		{"duplicate key: the last wins", "apiVersion: dapr.io/v1alpha1\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s1\nspec:\n  pubsubname: ps\n  topic: d\n  topic: e\n  routes:\n    default: /e\n",
			"", "e:/e", nil},
		{"exact spelling wins", "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nKind: Component\nmetadata:\n  name: s1\nspec:\n  pubsubname: ps\n  topic: c\n  route: /c\n",
			"", "c:/c", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Parse([]byte(tt.doc), "test.yaml", "app")
			if len(s.Errors) > 0 {
				t.Fatalf("errors: %v", s.Errors)
			}
			var comp, sub string
			for _, c := range s.Components {
				comp = c.Name + ":" + c.Type
				for _, m := range c.Metadata {
					comp += ":" + m.Name + "=" + m.Value
				}
			}
			var md map[string]string
			for _, x := range s.Subscriptions {
				sub = x.Topic + ":" + x.Routes.Default
				md = x.Metadata
				if x.PubsubName != "ps" {
					t.Errorf("pubsubname = %q", x.PubsubName)
				}
			}
			if comp != tt.wantComp || sub != tt.wantSub {
				t.Errorf("component %q, subscription %q; want %q, %q", comp, sub, tt.wantComp, tt.wantSub)
			}
			if tt.wantMD != nil && md["rawPayload"] != "true" {
				t.Errorf("subscription metadata = %v", md)
			}
		})
	}
}
