package acl

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
)

// FuzzCompile feeds accessControl YAML through Compile and Allow: neither
// may panic, a compiled ACL must answer every call, a refusal must carry
// Dapr's message, and the same call must get the same answer twice.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		"defaultAction: deny\ntrustDomain: public\npolicies:\n- appId: app1\n  defaultAction: allow\n  trustDomain: public\n  namespace: default\n",
		"defaultAction: deny\npolicies:\n- appId: app1\n  defaultAction: deny\n  trustDomain: public\n  namespace: default\n  operations:\n  - name: /op1\n    httpVerb: ['*']\n    action: allow\n",
		"defaultAction: allow\npolicies:\n- appId: app1\n  defaultAction: allow\n  trustDomain: public\n  namespace: default\n  operations:\n  - name: /op1/*\n    httpVerb: ['*']\n    action: deny\n  - name: /api/**\n    action: deny\n  - name: v*/x\n    httpVerb: [GET, POST]\n    action: allow\n",
		"policies:\n- appId: a\n  trustDomain: public\n  namespace: ns1\n- appId: a\n  trustDomain: public\n  namespace: ns1\n  operations:\n  - name: ''\n    action: ''\n",
		"policies:\n- appId: a\n",
		"{}",
	}
	for i, s := range seeds {
		f.Add(s, "/op1/x", []string{"GET", "POST", "", "*"}[i%4], i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, doc, op, verb string, http bool) {
		var spec config.AccessControl
		if err := yaml.Unmarshal([]byte(doc), &spec); err != nil {
			return
		}
		a, err := Compile(spec, Options{HTTP: http})
		if err != nil {
			if a != nil {
				t.Fatal("error with a non-nil ACL")
			}
			return
		}
		callers := []identity.App{{}, {TrustDomain: "public", Namespace: "default", AppID: "app1"}, {AppID: "a", Namespace: "ns1"}}
		for _, p := range spec.Policies {
			callers = append(callers, identity.App{TrustDomain: p.TrustDomain, Namespace: p.Namespace, AppID: p.AppID})
		}
		ops := []string{op}
		for _, p := range spec.Policies {
			for _, o := range p.Operations {
				ops = append(ops, o.Name, strings.ReplaceAll(o.Name, "*", "x"))
			}
		}
		for _, c := range callers {
			for _, o := range ops {
				ok, reason := a.Allow(c, o, verb)
				if ok != (reason == "") {
					t.Fatalf("Allow(%+v, %q, %q) = %v with reason %q", c, o, verb, ok, reason)
				}
				if !ok && !strings.HasPrefix(reason, "access control policy has denied access to id: ") && !strings.HasPrefix(reason, "error in method normalization: ") {
					t.Fatalf("reason %q is not Dapr's", reason)
				}
				if ok2, _ := a.Allow(c, o, verb); ok2 != ok {
					t.Fatal("same call, different answer")
				}
			}
		}
	})
}
