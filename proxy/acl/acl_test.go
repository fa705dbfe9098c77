package acl

import (
	"strings"
	"testing"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
)

// daprSpec is the spec of Dapr's pkg/acl tests (initializeAccessControlList).
func daprSpec() config.AccessControl {
	return config.AccessControl{
		DefaultAction: config.Deny,
		TrustDomain:   "abcd",
		Policies: []config.AppPolicy{
			{AppID: "app1", DefaultAction: config.Allow, TrustDomain: "public", Namespace: "ns1", Operations: []config.Operation{
				{Name: "/op1", HTTPVerb: []string{"POST", "GET"}, Action: config.Allow},
				{Name: "/op2", HTTPVerb: []string{"*"}, Action: config.Deny},
			}},
			{AppID: "app2", DefaultAction: config.Deny, TrustDomain: "domain1", Namespace: "ns2", Operations: []config.Operation{
				{Name: "/op3/a/*", HTTPVerb: []string{"PUT", "GET"}, Action: config.Allow},
				{Name: "/op4", HTTPVerb: []string{"POST"}, Action: config.Allow},
			}},
			{AppID: "app3", TrustDomain: "domain1", Namespace: "ns1", Operations: []config.Operation{
				{Name: "/op5", HTTPVerb: []string{"POST"}, Action: config.Allow},
			}},
			{AppID: "app1", DefaultAction: config.Allow, TrustDomain: "public", Namespace: "ns4", Operations: []config.Operation{
				{Name: "/op6", HTTPVerb: []string{"*"}, Action: config.Allow},
			}},
		},
	}
}

func app(td, ns, id string) identity.App {
	return identity.App{TrustDomain: td, Namespace: ns, AppID: id}
}

func mustCompile(t testing.TB, spec config.AccessControl, http bool) *ACL {
	t.Helper()
	a, err := Compile(spec, Options{HTTP: http})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDaprTable replays Dapr's IsOperationAllowedByAccessControlPolicy cases.
func TestDaprTable(t *testing.T) {
	tests := []struct {
		name   string
		caller identity.App
		op     string
		verb   string
		grpc   bool
		want   bool
	}{
		{"no matching app: global default", app("public", "ns1", "appX"), "op1", "POST", false, false},
		{"trust domain differs: global default", app("private", "ns1", "app1"), "op1", "POST", false, false},
		{"namespace differs: global default", app("public", "abcd", "app1"), "op1", "POST", false, false},
		{"no identity: global default", identity.App{}, "op1", "POST", false, false},
		{"metadata-only identity (mTLS off): global default", identity.App{AppID: "app1", Namespace: "ns1"}, "op1", "POST", false, false},
		{"operation not in policy: app default", app("public", "ns1", "app1"), "opX", "POST", false, true},
		{"http operations are case-insensitive", app("public", "ns1", "app1"), "Op2", "POST", false, false},
		{"verb not listed: app default", app("domain1", "ns2", "app2"), "op4", "PUT", false, false},
		{"app without default, verb not listed: global default", app("domain1", "ns1", "app3"), "op5", "PUT", false, false},
		{"verb matches *", app("public", "ns1", "app1"), "op2", "PUT", false, false},
		{"verb matches a listed verb", app("domain1", "ns2", "app2"), "op4", "POST", false, true},
		{"leading slash", app("domain1", "ns2", "app2"), "/op4", "POST", false, true},
		{"no verb on an http app: app default", app("domain1", "ns2", "app2"), "op4", "", false, false},
		{"/op3/a/* matches /op3/a", app("domain1", "ns2", "app2"), "/op3/a", "PUT", false, true},
		{"/op3/a/* does not match /op3/b/b", app("domain1", "ns2", "app2"), "/op3/b/b", "PUT", false, false},
		{"/op3/a/* matches /op3/a/b", app("domain1", "ns2", "app2"), "/op3/a/b", "PUT", false, true},
		{"/op3/a/* does not match /op3/a/b/c", app("domain1", "ns2", "app2"), "/op3/a/b/c", "PUT", false, false},
		{"grpc is case-sensitive", app("domain1", "ns2", "app2"), "/OP4", "", true, false},
		{"grpc: operation action", app("domain1", "ns2", "app2"), "op4", "", true, true},
		{"grpc ignores the verb", app("domain1", "ns2", "app2"), "op4", "DELETE", true, true},
		{"same app id, other namespace", app("public", "ns4", "app1"), "op6", "GET", false, true},
		{"dot segments cannot escape a rule", app("public", "ns1", "app1"), "/x/../op2", "GET", false, false},
		{"duplicate slashes cannot escape a rule", app("public", "ns1", "app1"), "//op2", "GET", false, false},
		{"escaped letters cannot escape a rule", app("public", "ns1", "app1"), "/%6fp2", "GET", false, false},
		{"trailing slash cannot escape a rule", app("public", "ns1", "app1"), "/op2/", "GET", false, false},
		{"query characters are refused", app("public", "ns1", "app1"), "/op1?x=1", "GET", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustCompile(t, daprSpec(), !tt.grpc)
			got, reason := a.Allow(tt.caller, tt.op, tt.verb)
			if got != tt.want {
				t.Fatalf("Allow(%+v, %q, %q) = %v (%s), want %v", tt.caller, tt.op, tt.verb, got, reason, tt.want)
			}
			if got != (reason == "") {
				t.Fatalf("reason %q with allowed=%v", reason, got)
			}
		})
	}
}

// TestDocScenarios are the examples of Dapr's "Apply access control list
// configuration for service invocation" page.
func TestDocScenarios(t *testing.T) {
	pol := func(id, def, td, ns string, ops ...config.Operation) config.AppPolicy {
		return config.AppPolicy{AppID: id, DefaultAction: def, TrustDomain: td, Namespace: ns, Operations: ops}
	}
	op := func(name, action string, verbs ...string) config.Operation {
		return config.Operation{Name: name, HTTPVerb: verbs, Action: action}
	}
	type call struct {
		caller identity.App
		op     string
		verb   string
		want   bool
	}
	app1 := app("public", "default", "app1")
	tests := []struct {
		name  string
		spec  config.AccessControl
		grpc  bool
		calls []call
	}{
		{"1: deny all but app1", config.AccessControl{DefaultAction: "deny", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("app1", "allow", "public", "default")}},
			false, []call{{app1, "/anything", "GET", true}, {app("public", "default", "app2"), "/anything", "GET", false}}},
		{"2: only op1 of app1", config.AccessControl{DefaultAction: "deny", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("app1", "deny", "public", "default", op("/op1", "allow", "*"))}},
			false, []call{{app1, "op1", "DELETE", true}, {app1, "op2", "GET", false}, {app("public", "default", "app2"), "op1", "GET", false}}},
		{"3: verbs for http, operation for grpc", config.AccessControl{DefaultAction: "deny", TrustDomain: "public",
			Policies: []config.AppPolicy{
				pol("app1", "deny", "public", "default", op("/op1", "allow", "POST", "PUT")),
				pol("app2", "deny", "myDomain", "ns1", op("/op2", "allow")),
			}},
			false, []call{{app1, "op1", "POST", true}, {app1, "op1", "PUT", true}, {app1, "op1", "GET", false}, {app("myDomain", "ns1", "app2"), "op2", "POST", false}}},
		{"3 (grpc app)", config.AccessControl{DefaultAction: "deny", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("app2", "deny", "myDomain", "ns1", op("/op2", "allow"))}},
			true, []call{{app("myDomain", "ns1", "app2"), "op2", "", true}, {app("myDomain", "ns1", "app2"), "op3", "", false}}},
		{"4: allow all but /op1/* of app1", config.AccessControl{DefaultAction: "allow", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("app1", "allow", "public", "default", op("/op1/*", "deny", "*"))}},
			false, []call{{app1, "/op1/x", "GET", false}, {app1, "/op1", "GET", false}, {app1, "/op1/x/y", "GET", true}, {app1, "/op2", "GET", true}}},
		{"5: same app id in two namespaces", config.AccessControl{DefaultAction: "allow", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("app1", "allow", "public", "ns1"), pol("app1", "deny", "public", "ns2")}},
			false, []call{{app("public", "ns1", "app1"), "x", "GET", true}, {app("public", "ns2", "app1"), "x", "GET", false}}},
		{"hello world: pythonapp may not POST /neworder", config.AccessControl{DefaultAction: "allow", TrustDomain: "public",
			Policies: []config.AppPolicy{pol("pythonapp", "allow", "myDomain", "default", op("/neworder", "deny", "POST"))}},
			false, []call{{app("myDomain", "default", "pythonapp"), "neworder", "POST", false}, {app("myDomain", "default", "pythonapp"), "neworder", "GET", true}}},
		{"multi-segment wildcard", config.AccessControl{DefaultAction: "deny",
			Policies: []config.AppPolicy{pol("app1", "deny", "public", "default", op("/api/**", "allow", "*"), op("/v*/state", "allow", "GET"))}},
			false, []call{{app1, "/api/a/b/c", "GET", true}, {app1, "/api", "GET", true}, {app1, "/v1/state", "GET", true}, {app1, "/v1/other", "GET", false}}},
		{"upper-case rule on an http app", config.AccessControl{DefaultAction: "deny",
			Policies: []config.AppPolicy{pol("app1", "deny", "public", "default", op("/Admin", "allow", "*"))}},
			false, []call{{app1, "/admin", "GET", true}, {app1, "/ADMIN", "GET", true}}},
		{"an empty action denies", config.AccessControl{DefaultAction: "allow",
			Policies: []config.AppPolicy{pol("app1", "allow", "public", "default", op("/x", "", "*"))}},
			false, []call{{app1, "/x", "GET", false}, {app1, "/y", "GET", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustCompile(t, tt.spec, !tt.grpc)
			for _, c := range tt.calls {
				if got, reason := a.Allow(c.caller, c.op, c.verb); got != c.want {
					t.Errorf("Allow(%s, %q, %q) = %v (%s), want %v", c.caller, c.op, c.verb, got, reason, c.want)
				}
			}
		})
	}
}

func TestCompileDefaults(t *testing.T) {
	a, err := Compile(config.AccessControl{}, Options{HTTP: true})
	if err != nil || a != nil {
		t.Fatalf("empty spec: %v, %v; want nil ACL", a, err)
	}
	if ok, _ := a.Allow(identity.App{}, "/x", "GET"); !ok {
		t.Fatal("nil ACL must allow")
	}
	// Policies without a global default: deny.
	a = mustCompile(t, config.AccessControl{Policies: []config.AppPolicy{{AppID: "a", TrustDomain: "public", Namespace: "default"}}}, true)
	if ok, _ := a.Allow(app("public", "default", "other"), "/x", "GET"); ok {
		t.Fatal("policies without defaultAction must default to deny")
	}
	// Only a trust domain: allow.
	a = mustCompile(t, config.AccessControl{TrustDomain: "public"}, true)
	if ok, _ := a.Allow(app("public", "default", "other"), "/x", "GET"); !ok {
		t.Fatal("a trust domain alone must allow")
	}
	// Upper-case global action.
	a = mustCompile(t, config.AccessControl{DefaultAction: "DENY"}, true)
	if ok, _ := a.Allow(app("public", "default", "other"), "/x", "GET"); ok {
		t.Fatal("DENY must deny")
	}
	// A later policy for the same app and namespace wins.
	a = mustCompile(t, config.AccessControl{DefaultAction: "deny", Policies: []config.AppPolicy{
		{AppID: "a", TrustDomain: "public", Namespace: "default", DefaultAction: "deny"},
		{AppID: "a", TrustDomain: "public", Namespace: "default", DefaultAction: "allow"},
	}}, true)
	if ok, _ := a.Allow(app("public", "default", "a"), "/x", "GET"); !ok {
		t.Fatal("the later duplicate policy must win")
	}
}

func TestCompileRejectsIncompletePolicies(t *testing.T) {
	_, err := Compile(config.AccessControl{DefaultAction: "deny", Policies: []config.AppPolicy{
		{AppID: "a", Namespace: "ns"},
		{AppID: "b", TrustDomain: "public"},
		{TrustDomain: "public", Namespace: "ns"},
		{AppID: "ok", TrustDomain: "public", Namespace: "ns"},
	}}, Options{})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{`policies[0] (appId "a"): trustDomain`, `policies[1] (appId "b"): namespace`, `policies[2] (appId ""): appId`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "policies[3]") {
		t.Errorf("complete policy reported: %v", err)
	}
}

func TestDeniedMessageIsDapr(t *testing.T) {
	a := mustCompile(t, config.AccessControl{DefaultAction: "deny"}, true)
	err := a.Check(app("public", "default", "caller"), "checkout", "POST")
	want := "access control policy has denied access to id: spiffe://public/ns/default/caller operation: checkout verb: POST"
	if err == nil || err.Error() != want {
		t.Fatalf("Check = %v, want %q", err, want)
	}
	if _, ok := err.(*DeniedError); !ok {
		t.Fatalf("Check returned %T, want *DeniedError", err)
	}
	_, reason := a.Allow(app("public", "default", "caller"), "/a/../admin/x", "")
	if want := "access control policy has denied access to id: spiffe://public/ns/default/caller operation: /admin/x verb: NONE"; reason != want {
		t.Fatalf("reason = %q, want %q", reason, want)
	}
	_, reason = a.Allow(app("public", "default", "caller"), "a\x01b", "GET")
	if !strings.HasPrefix(reason, "error in method normalization: ") {
		t.Fatalf("reason = %q", reason)
	}
	if err := a.Check(identity.App{}, "x", "GET"); err == nil || !strings.Contains(err.Error(), "id: unknown ") {
		t.Fatalf("anonymous caller: %v", err)
	}
}

func TestOnDecision(t *testing.T) {
	var got []Decision
	a, err := Compile(config.AccessControl{DefaultAction: "deny", Policies: []config.AppPolicy{
		{AppID: "a", TrustDomain: "public", Namespace: "default", DefaultAction: "allow", Operations: []config.Operation{{Name: "/admin/*", HTTPVerb: []string{"POST"}, Action: "deny"}}},
	}}, Options{HTTP: true, OnDecision: func(d Decision) { got = append(got, d) }})
	if err != nil {
		t.Fatal(err)
	}
	a.Allow(app("public", "default", "a"), "/admin/x", "POST")
	a.Allow(app("public", "default", "a"), "/admin/x", "GET")
	a.Allow(app("public", "default", "b"), "/x", "GET")
	want := []struct {
		allowed bool
		policy  string
	}{{false, PolicyApp}, {true, PolicyApp}, {false, PolicyGlobal}}
	if len(got) != len(want) {
		t.Fatalf("%d decisions, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Allowed != w.allowed || got[i].Policy != w.policy {
			t.Errorf("decision %d = %+v, want allowed=%v policy=%s", i, got[i], w.allowed, w.policy)
		}
	}
}

func TestTrie(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		path     string
		want     string // pattern found, "" for none
	}{
		{"exact", []string{"/api/v1/state"}, "/api/v1/state", "/api/v1/state"},
		{"no match", []string{"/api/v1/state"}, "/api/v1/other", ""},
		{"one segment", []string{"/api/v1/*"}, "/api/v1/foo", "/api/v1/*"},
		{"one segment, not two", []string{"/api/v1/*"}, "/api/v1/foo/bar", ""},
		{"any segments", []string{"/api/**"}, "/api/anything/nested/deep", "/api/**"},
		{"wildcard first shadows exact sibling", []string{"/api/v1/*", "/api/v1/state"}, "/api/v1/state", "/api/v1/*"},
		{"first put wins", []string{"/a", "/a"}, "/a", "/a#0"},
		{"empty", nil, "/a", ""},
		{"glob in segment", []string{"/v*/state"}, "/v2/state", "/v*/state"},
		{"glob in segment, no match", []string{"/v*/state"}, "/x2/state", ""},
		{"root", []string{"/"}, "/", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var root node
			for i, p := range tt.patterns {
				name := p
				if i == 0 && tt.want == p+"#0" {
					name = p + "#0"
				}
				root.put(p, &operation{name: name})
			}
			got := root.search(tt.path)
			switch {
			case got == nil && tt.want != "":
				t.Fatalf("search(%q) = nil, want %q", tt.path, tt.want)
			case got != nil && got.name != tt.want:
				t.Fatalf("search(%q) = %q, want %q", tt.path, got.name, tt.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"path", "path"}, {"Path", "Path"}, {"/path", "/path"}, {"///path", "/path"},
		{"../path", "path"}, {"path%72", "pathr"}, {"path1/path2/path3", "path1/path2/path3"},
		{"/path1/path2/path3", "/path1/path2/path3"}, {"/a/./b/../c/", "/a/c"}, {"/a%2fb", "/a%2Fb"},
		{"%", "%"}, {"a%4", "a%4"}, {"", ""}, {"/..", "/"},
	}
	for _, tt := range tests {
		got, err := normalize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a#b", "a?b", "a\x00b", "a\nb", "a\x7fb"} {
		if _, err := normalize(bad); err == nil {
			t.Errorf("normalize(%q): want error", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abc", true}, {"a*c", "ac", true}, {"a*c", "ab", false},
		{"/v*", "/v1", true}, {"**", "x", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false}, {"abc", "abc", true}, {"abc", "abd", false},
	}
	for _, tt := range tests {
		if got := glob(tt.p, tt.s); got != tt.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	a := mustCompile(b, daprSpec(), true)
	caller := app("domain1", "ns2", "app2")
	b.ReportAllocs()
	for b.Loop() {
		a.Allow(caller, "/op3/a/b", "PUT")
	}
}
