package components

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeDir writes files into a new temp folder and returns it.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const redisYAML = `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  initTimeout: 2s
  ignoreErrors: true
  metadata:
  - name: redisHost
    value: localhost:6379
  - name: redisPassword
    value: ""
  - name: actorStateStore
    value: true
  - name: port
    value: 0755
`

var loadCases = []struct {
	name      string
	files     map[string]string
	appID     string
	namespace string // Filter.Namespace
	wantComps []string
	wantSubs  []string
	wantDocs  []string
	wantErrs  []string // substrings, one per error, in order
	// wantConflict is Set.Conflict's text, exactly (daprd's words).
	wantConflict string
}{
	{
		name:      "one component",
		files:     map[string]string{"redis.yaml": redisYAML},
		wantComps: []string{"statestore"},
	},
	{
		name: "multi-document file with every kind",
		files: map[string]string{"all.yml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.redis, version: v1}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders}
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules:
    - {match: 'event.type == "a"', path: /a}
    default: /orders
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: res}
spec: {}
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: cfg}
spec: {}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: ext}
spec: {baseUrl: "http://example.com"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: not-ours}
---
`},
		wantComps: []string{"pubsub"},
		wantSubs:  []string{"orders"},
		wantDocs:  []string{"Resiliency/res", "Configuration/cfg", "HTTPEndpoint/ext"},
	},
	{
		name: "scopes",
		files: map[string]string{"s.yaml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mine}
spec: {type: state.in-memory}
scopes: [app1, app2]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: theirs}
spec: {type: state.in-memory}
scopes: [other]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: everyone}
spec: {type: state.in-memory}
scopes: []
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: theirsub}
spec: {pubsubname: p, topic: t, route: /t}
scopes: [other]
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: theirres}
scopes: [other]
`},
		appID:     "app2",
		wantComps: []string{"mine", "everyone"},
	},
	{
		// daprd's rule (IsValidPathSegmentName): spaces, '?', '#' and
		// non-ASCII letters are valid; '.', '..', '/' and '%' are not.
		name: "component names daprd accepts",
		files: map[string]string{"names.yaml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: 'Sĭ騉 ńĄ?F珡j!ĚZ#m'}
spec: {type: state.in-memory}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: '..'}
spec: {type: state.in-memory}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: 'a%2F'}
spec: {type: state.in-memory}
`},
		wantComps: []string{"Sĭ騉 ńĄ?F珡j!ĚZ#m"},
		wantErrs:  []string{`metadata.name: ".." cannot be a component name`, `metadata.name: "a%2F" cannot contain '/' or '%'`},
	},
	{
		name: "broken file does not stop the others and names the file",
		files: map[string]string{
			"a-good.yaml": redisYAML,
			"b-bad.yaml":  "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x\n",
			"c-good.yaml": strings.ReplaceAll(redisYAML, "statestore", "other"),
			"notes.txt":   "ignored: [",
		},
		wantComps: []string{"statestore", "other"},
		wantErrs:  []string{"b-bad.yaml: invalid YAML"},
	},
	{
		name: "missing type with a hint",
		files: map[string]string{"redis.yaml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  metadata:
  - {name: redisHost, value: "localhost:6379"}
`},
		wantErrs: []string{`redis.yaml: component "statestore": spec.type: missing; it looks like state.redis`},
	},
	{
		name: "field errors",
		files: map[string]string{"bad.yaml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: "a/b"}
spec: {type: state.redis}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: t1}
spec: {type: redis}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: t2}
spec: {type: state.redis, initTimeout: forever}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: t3}
spec:
  type: state.redis
  metadata:
  - value: x
  - name: pw
    secretKeyRef: {key: k}
---
apiVersion: dapr.io/v2alpha1
kind: Component
metadata: {name: t4}
spec: {type: state.redis}
---
kind: Component
metadata: {name: t5}
spec: {type: state.redis}
---
apiVersion: dapr.io/v1alpha1
kind: Component
spec: {type: state.redis}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: t6}
spec: {type: state.redis, metadata: {not: a list}}
---
metadata: {name: t7}
spec: {type: state.redis}
---
- just a list
`},
		wantErrs: []string{
			`component "a/b": metadata.name: "a/b" cannot contain '/'`,
			`component "t1": spec.type: "redis" is not a component type`,
			`component "t2": spec.initTimeout: "forever" is not a duration`,
			`component "t3": spec.metadata[0].name: missing`,
			`component "t3": spec.metadata[1] (pw).secretKeyRef.name: missing`,
			`component "t4": apiVersion: "dapr.io/v2alpha1" is not supported for a Component; use dapr.io/v1alpha1`,
			`component "t5": apiVersion: missing`,
			`bad.yaml:36: component: metadata.name: missing`,
			`component "t6": line 43: cannot unmarshal !!map`,
			`document "t7": kind: missing`,
			`bad.yaml:48: document: a resource must be a YAML mapping`,
		},
	},
	{
		name: "subscription errors",
		files: map[string]string{"subs.yaml": `
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s1}
spec: {topic: t}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s2}
spec: {pubsubname: p, topic: t, route: /old}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: s3}
spec: {pubsubname: p, topic: t}
---
apiVersion: dapr.io/v3
kind: Subscription
metadata: {name: s4}
spec: {pubsubname: p, topic: t, route: /x}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s5}
spec: {pubsubname: p, topic: t, routes: {rules: [{match: x}]}, bulkSubscribe: {maxMessagesCount: -1}}
`},
		wantErrs: []string{
			`subscription "s1": spec.pubsubname: missing`,
			`subscription "s1": spec.routes: missing`,
			`subscription "s2": spec.route: is a dapr.io/v1alpha1 field`,
			`subscription "s2": spec.routes: missing`,
			`subscription "s3": spec.route: missing`,
			`subscription "s4": apiVersion: "dapr.io/v3" is not supported`,
			`subscription "s5": spec.routes.rules[0].path: missing`,
			`subscription "s5": spec.bulkSubscribe.maxMessagesCount: must not be negative`,
		},
	},
	{
		name: "duplicate names across files keep the first",
		files: map[string]string{
			"1.yaml": redisYAML,
			"2.yaml": redisYAML,
		},
		wantComps:    []string{"statestore"},
		wantConflict: "duplicate definition of Component name statestore (state.redis/v1) with existing statestore (state.redis/v1)",
	},
	{
		name: "duplicates across kinds, in file order, namespaces not checked",
		files: map[string]string{"1.yaml": nsComp("123", "mynamespace", "state.in-memory") + nsComp("foo", "foobar", "state.in-memory") +
			nsComp("foo", "mynamespace", "pubsub.in-memory") + nsComp("foo", "", "state.in-memory")},
		wantComps: []string{"123", "foo"},
		wantConflict: "duplicate definition of Component name foo (pubsub.in-memory/v1) with existing foo (state.in-memory/v1)\n" +
			"duplicate definition of Component name foo (state.in-memory/v1) with existing foo (state.in-memory/v1)",
	},
	{
		name: "a namespace skips the others' resources before duplicates are looked for",
		files: map[string]string{"1.yaml": nsComp("123", "mynamespace", "state.in-memory") + nsComp("foo", "foobar", "state.in-memory") +
			nsComp("foo", "mynamespace", "pubsub.in-memory") + nsComp("foo", "", "state.in-memory") +
			"---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s1, namespace: other}\nspec: {pubsubname: p, topic: t, routes: {default: /a}}\n" +
			"---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s2, namespace: mynamespace}\nspec: {pubsubname: p, topic: t, routes: {default: /a}}\n"},
		namespace:    "mynamespace",
		wantComps:    []string{"123", "foo"},
		wantSubs:     []string{"s2"},
		wantConflict: "duplicate definition of Component name foo (state.in-memory/v1) with existing foo (pubsub.in-memory/v1)",
	},
	{
		name: "same name scoped to different apps is not a duplicate",
		files: map[string]string{
			"1.yaml": redisYAML + "scopes: [a]\n",
			"2.yaml": redisYAML + "scopes: [b]\n",
		},
		appID:     "b",
		wantComps: []string{"statestore"},
	},
	{
		name:  "empty and comment-only files",
		files: map[string]string{"empty.yaml": "", "c.yaml": "# nothing\n---\n"},
	},
}

// nsComp is a component document (with its leading ---) in a namespace
// ("" for none).
func nsComp(name, namespace, typ string) string {
	ns := ""
	if namespace != "" {
		ns = "\n  namespace: " + namespace
	}
	return fmt.Sprintf("---\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %q%s\nspec:\n  type: %s\n  version: v1\n", name, ns, typ)
}

func TestLoad(t *testing.T) {
	for _, tc := range loadCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, tc.files)
			set, err := LoadFiltered([]string{dir}, Filter{AppID: tc.appID, Namespace: tc.namespace})
			if got := fmt.Sprint(set.Conflict()); (tc.wantConflict != "" || set.Conflict() != nil) && got != tc.wantConflict {
				t.Errorf("conflict = %q, want %q", got, tc.wantConflict)
			}
			var comps, subs, docs []string
			for _, c := range set.Components {
				comps = append(comps, c.Name)
			}
			for _, s := range set.Subscriptions {
				subs = append(subs, s.Name)
			}
			for _, d := range set.Documents {
				docs = append(docs, d.Kind+"/"+d.Name)
			}
			for _, e := range set.HTTPEndpoints {
				docs = append(docs, KindHTTPEndpoint+"/"+e.Name)
			}
			if !slices.Equal(comps, tc.wantComps) || !slices.Equal(subs, tc.wantSubs) || !slices.Equal(docs, tc.wantDocs) {
				t.Errorf("loaded components %v subscriptions %v documents %v; want %v %v %v", comps, subs, docs, tc.wantComps, tc.wantSubs, tc.wantDocs)
			}
			if (err != nil) != (len(tc.wantErrs) > 0) {
				t.Errorf("err = %v, want %d errors", err, len(tc.wantErrs))
			}
			if len(set.Errors) != len(tc.wantErrs) {
				for _, e := range set.Errors {
					t.Log(e)
				}
				t.Fatalf("%d errors, want %d", len(set.Errors), len(tc.wantErrs))
			}
			for i, e := range set.Errors {
				if !strings.Contains(e.Error(), tc.wantErrs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tc.wantErrs[i])
				}
				if !strings.HasPrefix(e.Error(), dir) {
					t.Errorf("error %d = %q does not start with the file path", i, e)
				}
			}
		})
	}
}

func TestLoadComponentFields(t *testing.T) {
	dir := writeDir(t, map[string]string{"redis.yaml": redisYAML + `  - name: json
    value: {a: 1, b: [x, true]}
  - name: fromEnv
    envRef: REDIS_HOST
  - name: secret
    secretKeyRef: {name: redis-secret, key: password}
auth:
  secretStore: local
`})
	set, err := Load([]string{dir}, "app")
	if err != nil {
		t.Fatal(err)
	}
	got := set.Components[0]
	want := Component{
		APIVersion: APIVersionV1Alpha1, Name: "statestore", SecretStore: "local", Type: "state.redis", Version: "v1",
		InitTimeout: 2 * time.Second, IgnoreErrors: true,
		Metadata: []MetadataItem{
			{Name: "redisHost", Value: "localhost:6379", HasValue: true},
			{Name: "redisPassword", Value: "", HasValue: true},
			{Name: "actorStateStore", Value: "true", HasValue: true},
			{Name: "port", Value: "0755", HasValue: true},
			{Name: "json", Value: `{"a":1,"b":["x",true]}`, HasValue: true},
			{Name: "fromEnv", EnvRef: "REDIS_HOST"},
			{Name: "secret", SecretKeyRef: &SecretKeyRef{Name: "redis-secret", Key: "password"}},
		},
		Source: filepath.Join(dir, "redis.yaml"), Line: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("component =\n%+v\nwant\n%+v", got, want)
	}
	if got.Category() != "state" || !got.Same(want) {
		t.Errorf("Category %q, Same %v", got.Category(), got.Same(want))
	}
	if got.InScope("x") != true {
		t.Error("InScope with no scopes should be true")
	}
}

func TestLoadDefaultsAndSubscriptionShapes(t *testing.T) {
	dir := writeDir(t, map[string]string{"x.yaml": `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: mem}
spec: {type: state.in-memory}
---
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata: {name: old}
spec: {pubsubname: p, topic: t, route: /r, deadLetterTopic: dl, metadata: {rawPayload: true}}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: new, namespace: ns}
spec:
  pubsubname: p
  topic: t
  routes: {rules: [{match: 'event.type == "x"', path: /x}], default: /d}
  bulkSubscribe: {enabled: true, maxMessagesCount: 100, maxAwaitDurationMs: 40}
scopes: [app]
`})
	set, err := Load([]string{dir}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if c := set.Components[0]; c.InitTimeout != DefaultInitTimeout || c.Version != "" || c.IgnoreErrors {
		t.Errorf("defaults: %+v", c)
	}
	old, nw := set.Subscriptions[0], set.Subscriptions[1]
	if old.Routes.Default != "/r" || old.DeadLetterTopic != "dl" || old.Metadata["rawPayload"] != "true" {
		t.Errorf("v1alpha1 subscription: %+v", old)
	}
	wantRoutes := Routes{Rules: []Rule{{Match: `event.type == "x"`, Path: "/x"}}, Default: "/d"}
	if !reflect.DeepEqual(nw.Routes, wantRoutes) || nw.BulkSubscribe != (BulkSubscribe{true, 100, 40}) || nw.Namespace != "ns" {
		t.Errorf("v2alpha1 subscription: %+v", nw)
	}
	if got := len(set.ComponentsOf("state")); got != 1 {
		t.Errorf("ComponentsOf(state) = %d", got)
	}
}

func TestLoadMissingFolder(t *testing.T) {
	good := writeDir(t, map[string]string{"r.yaml": redisYAML})
	set, err := Load([]string{"/nonexistent-tandem-dir", good}, "")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-tandem-dir: cannot read the resources folder") {
		t.Errorf("err = %v", err)
	}
	if len(set.Components) != 1 {
		t.Errorf("the good folder was not loaded: %v", set.Components)
	}
}
