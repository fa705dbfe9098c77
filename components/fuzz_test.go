package components

import (
	"context"
	"testing"
)

// FuzzParseResources checks that no input makes the resource parser, the
// metadata and HTTP endpoint resolvers or Diff panic, and that no invalid
// component, subscription or HTTP endpoint is accepted. Seeds: every loader
// table document plus adversarial YAML.
func FuzzParseResources(f *testing.F) {
	for _, tc := range loadCases {
		for _, content := range tc.files {
			f.Add([]byte(content))
		}
	}
	for _, s := range []string{
		redisYAML,
		subYAML,
		endpointYAML,
		"kind: HTTPEndpoint\napiVersion: dapr.io/v1alpha1\nmetadata: {name: e}\nspec: {baseUrl: 'http://x', headers: [{name: h, value: {a: 1}}], clientTLS: {rootCA: {value: x}, certificate: {secretKeyRef: {name: c}}, privateKey: {value: &k [*k]}}}\n",
		"kind: HTTPEndpoint\napiVersion: dapr.io/v1alpha1\nmetadata: {name: e}\nspec: {clientTLS: 1, headers: {}}\n",
		fakeComp("x", "{uuid}{appID}{namespace}"),
		"a: &a [*a]\n",
		"kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: &m {name: *m}\n",
		"kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: a}\nspec: {type: s.t, metadata: [{name: v, value: &v [*v]}]}\n",
		"kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: a}\nspec: {type: s.t, metadata: [{name: v, value: {1: .nan}}]}\n",
		"kind: Component\napiVersion: dapr.io/v1alpha1\nmetadata: {name: a}\nspec: {type: s.t, metadata: [{name: v, value: !!binary aGk=}]}\n",
		"kind: Subscription\napiVersion: dapr.io/v2alpha1\nmetadata: {name: s}\nspec: {routes: {rules: [[]]}}\n",
		"kind: Resiliency\napiVersion: dapr.io/v1alpha1\nmetadata: {name: r}\nspec: !!str x\n",
		"kind: [Component]\n",
		"metadata: {name: [x]}\nspec: 1\n",
		"---\n---\n- 1\n--- !!map\n",
		"\t\x00",
	} {
		f.Add([]byte(s))
	}
	env := Env{AppID: "app", Namespace: "ns", PodName: "p", Getenv: func(string) string { return "e" },
		Secret:  func(context.Context, string, string, string) (string, error) { return "s", nil },
		NewUUID: func() string { return "u" }}
	f.Fuzz(func(t *testing.T, data []byte) {
		set := Parse(data, "fuzz.yaml", "app")
		for _, e := range set.Errors {
			if e.Error() == "" {
				t.Fatal("empty error message")
			}
		}
		for _, c := range set.Components {
			if c.Name == "" || c.Type == "" {
				t.Fatalf("invalid component accepted: %+v", c)
			}
			_, _ = env.Resolve(context.Background(), c)
			_ = c.Same(c)
		}
		for _, e := range set.HTTPEndpoints {
			if e.Name == "" || CheckBaseURL(e.BaseURL) != nil {
				t.Fatalf("invalid HTTP endpoint accepted: %+v", e)
			}
			_, _ = env.ResolveHTTPEndpoint(context.Background(), e)
			if !e.Same(e) {
				t.Fatalf("endpoint not Same as itself: %+v", e)
			}
		}
		for _, s := range set.Subscriptions {
			if s.PubsubName == "" || s.Topic == "" {
				t.Fatalf("invalid subscription accepted: %+v", s)
			}
		}
		set.dedupe() // as Load does: names are unique in a loaded set
		if ev := Diff(set, set); len(ev) != 0 {
			t.Fatalf("Diff of a set with itself: %v", ev)
		}
		_ = Diff(&Set{}, set)
		_ = keepLastGood(set, &Set{Errors: set.Errors})
	})
}
