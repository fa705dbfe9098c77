package deptest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// arrow is a dependency that must not exist: no package matching from may
// import a package matching to, directly or through other packages of ours.
// The test files of a package count as the package.
type arrow struct {
	from, to string
	why      string
}

// forbidden is the architecture, written once. Dependencies flow one way:
// cmd -> proxy -> invoke -> identity, resiliency; proxy -> components/<kind>
// -> components; sentry beside the sidecar, never inside it.
//
// Patterns name packages by their path inside the module
// ("components/state/redis"):
//   - a segment matches itself; "*" matches any one segment;
//   - "{v}" matches any one segment and names it v; "{!v}" (in to) matches
//     one segment other than the one from named v;
//   - a final "..." matches zero or more segments, so "proxy/..." is proxy
//     and everything under it; "..." alone matches every package of ours;
//   - "a|b" matches what a or b matches;
//   - a leading "!" matches every package the rest does not.
var forbidden = []arrow{
	{"identity/...", "!identity/...|internal/...", "identity is a leaf: it imports no other package of ours but the shared leaves in internal"},
	{"resiliency/...", "!resiliency/...|internal/...", "resiliency is a leaf: it imports no other package of ours but the shared leaves in internal"},
	{"config/...", "!config/...|internal/...", "config is a leaf: it imports no other package of ours but the shared leaves in internal"},
	{"internal/...", "!internal/...", "internal holds the leaves every part may share (filewatch, sqlitebusy): they import nothing else of ours"},
	{"wasmapp/...", "!wasmapp/...|internal/leanwire", "wasmapp is compiled into Wasm apps: it imports nothing of ours but the lean ABI's layout (internal/leanwire, which the sidecar shares), so an app's module holds only it and net/http (or, for wasmapp/lean, not even that)"},
	{"!examples/...|test/...|wasmapp/...", "wasmapp/...", "only apps (examples, test apps) import the Wasm guest package; the sidecar hosts modules, it never links the guest side"},
	{"examples/...", "!wasmapp/...", "an example app uses only what an app author can: the wasmapp guest package"},

	{"components/...", "proxy/...", "components serve the APIs in proxy, never the other way round"},
	{"components/...", "invoke/...", "components know nothing of service invocation"},
	{"components/...", "cmd/...", "components are wired by cmd, never the other way round"},
	{"components/{kind}/*/...", "components/{!kind}/...", "a backend imports only its own kind (and components)"},
	{"components/*/*/...", "observe/...", "a backend reports through its kind's interface; telemetry is wired around it"},

	{"invoke/...", "proxy/...", "invoke sits below proxy: the APIs call it"},
	{"invoke/...", "components/...", "invoke carries calls between sidecars and knows nothing of components"},

	{"invoke/...", "actors/...", "invoke sits below actors: the actor router calls it"},
	{"actors/...", "proxy/...", "actors sits below proxy: the APIs call the actor runtime"},
	{"actors/...", "workflow/...", "actors sits below workflow: the engine hosts its actor types on the runtime"},
	{"workflow/...", "proxy/...", "workflow sits below proxy: the APIs call the engine"},

	{"sentry/...", "proxy/...", "sentry is a control-plane service: it never uses the sidecar's packages"},
	{"sentry/...", "invoke/...", "sentry is a control-plane service: it never uses the sidecar's packages"},
	{"sentry/...", "components/...", "sentry is a control-plane service: it never uses the sidecar's packages"},
	{"operator/...|injector/...", "proxy/...|invoke/...|components/...", "the operator and the injector are control-plane services: they never use the sidecar's packages"},
	{"sentry/...", "operator/...|injector/...", "sentry comes first in the control plane: the operator and the injector get their certificates from it"},

	{"operator/...", "proxy/...|invoke/...|components/...", "the operator's packages are control plane: they never use the sidecar's packages"},
	{"xds/...", "proxy/...|invoke/...|components/...|actors/...|workflow/...", "the xDS server is control plane: the sidecar's xds name resolver is its client, never the other way round"},
	{"scheduler/...", "proxy/...|invoke/...|components/...|actors/...|placement/...", "the scheduler is a control-plane service: it never uses the sidecar's packages"},
	{"scaler/...", "!scaler/...|internal/...", "the KEDA scaler reads the sidecars' load reports over their metadata API: it imports only internal (loadreport)"},

	{"cmd/{bin}/...", "cmd/{!bin}/...", "a binary's packages belong to that binary alone"},
	{"!cmd/...", "cmd/...", "nothing imports a binary: cmd is the top"},
}

// match reports whether pkg matches pattern (see forbidden) with the names
// already bound in vars, and returns vars extended with what pattern names.
// vars is not modified.
func match(pattern, pkg string, vars map[string]string) (map[string]string, bool) {
	if rest, ok := strings.CutPrefix(pattern, "!"); ok {
		_, m := match(rest, pkg, vars)
		return vars, !m
	}
	if alts := strings.Split(pattern, "|"); len(alts) > 1 {
		for _, a := range alts {
			if out, ok := match(a, pkg, vars); ok {
				return out, true
			}
		}
		return nil, false
	}
	if pattern == "..." {
		return vars, true
	}
	ps, ss := strings.Split(pattern, "/"), strings.Split(pkg, "/")
	out := maps.Clone(vars)
	if out == nil {
		out = map[string]string{}
	}
	for i, p := range ps {
		if p == "..." && i == len(ps)-1 {
			return out, true
		}
		if i >= len(ss) {
			return nil, false
		}
		s := ss[i]
		switch {
		case p == "*":
		case strings.HasPrefix(p, "{!") && strings.HasSuffix(p, "}"):
			v, ok := out[p[2:len(p)-1]]
			if !ok || s == v {
				return nil, false
			}
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			name := p[1 : len(p)-1]
			if v, ok := out[name]; ok && v != s {
				return nil, false
			}
			out[name] = s
		case p != s:
			return nil, false
		}
	}
	return out, len(ps) == len(ss)
}

// graph is the import graph of the module's packages, named by their path
// inside the module; only imports of other packages of ours are kept.
type graph struct {
	imports map[string][]string // what each package's non-test files import
	tests   map[string][]string // what its _test.go files import besides
}

// violation is one forbidden dependency: path runs from the importing
// package to the forbidden one, through the packages that connect them.
type violation struct {
	rule arrow
	path []string
	test bool // the first step is an import of a _test.go file
}

func (v violation) String() string {
	via := strings.Join(v.path, " -> ")
	if v.test {
		via = v.path[0] + " (tests) -> " + strings.Join(v.path[1:], " -> ")
	}
	return fmt.Sprintf("%s must not depend on %s (rule %s -> %s: %s): %s",
		v.path[0], v.path[len(v.path)-1], v.rule.from, v.rule.to, v.rule.why, via)
}

// check returns every forbidden dependency in g, each package and its tests
// followed through the non-test imports of what they import.
func check(g graph, rules []arrow) []violation {
	var out []violation
	pkgs := slices.Sorted(maps.Keys(g.imports))
	for _, from := range pkgs {
		// Breadth-first from the package's own imports and its tests'.
		prev := map[string]string{}
		byTest := map[string]bool{}
		var queue []string
		start := func(to string, test bool) {
			if _, seen := prev[to]; seen || to == from {
				return
			}
			prev[to], byTest[to] = from, test
			queue = append(queue, to)
		}
		for _, to := range g.imports[from] {
			start(to, false)
		}
		for _, to := range g.tests[from] {
			start(to, true)
		}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, next := range g.imports[cur] {
				if _, seen := prev[next]; seen || next == from {
					continue
				}
				prev[next], byTest[next] = cur, byTest[cur]
				queue = append(queue, next)
			}
		}
		for _, to := range slices.Sorted(maps.Keys(prev)) {
			for _, r := range rules {
				vars, ok := match(r.from, from, nil)
				if !ok {
					continue
				}
				if _, ok := match(r.to, to, vars); !ok {
					continue
				}
				path := []string{to}
				for p := to; p != from; p = prev[p] {
					path = append(path, prev[p])
				}
				slices.Reverse(path)
				out = append(out, violation{rule: r, path: path, test: byTest[to]})
			}
		}
	}
	return out
}

// load lists the module's packages with the go command and returns the
// module's root folder and its import graph.
func load(t *testing.T) (string, graph) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency test needs the go command: %v", err)
	}
	var mod struct{ Path, Dir string }
	out, err := exec.Command(goCmd, "list", "-m", "-json").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	list := exec.Command(goCmd, "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	list.Dir = mod.Dir
	list.Stderr = os.Stderr
	out, err = list.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	ours := func(p string) (string, bool) { return strings.CutPrefix(p, mod.Path+"/") }
	keep := func(self string, ps ...[]string) []string {
		var rel []string
		for _, p := range slices.Concat(ps...) {
			if r, ok := ours(p); ok && r != self && !slices.Contains(rel, r) {
				rel = append(rel, r)
			}
		}
		return rel
	}
	g := graph{imports: map[string][]string{}, tests: map[string][]string{}}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list ./...: %v", err)
		}
		self, ok := ours(p.ImportPath)
		if !ok {
			t.Fatalf("go list ./...: package %s is outside module %s", p.ImportPath, mod.Path)
		}
		g.imports[self] = keep(self, p.Imports)
		g.tests[self] = keep(self, p.TestImports, p.XTestImports)
	}
	return mod.Dir, g
}

// TestDependencies fails when the code has one of the forbidden arrows.
func TestDependencies(t *testing.T) {
	_, g := load(t)
	for _, v := range check(g, forbidden) {
		t.Error(v)
	}
	// A rule whose importer matches nothing is a typo, not a guarantee.
	for _, r := range forbidden {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(g.imports)), func(p string) bool {
			_, ok := match(r.from, p, nil)
			return ok
		}) {
			t.Errorf("rule %s -> %s: no package matches %q", r.from, r.to, r.from)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, pkg string
		vars         map[string]string
		want         bool
	}{
		{"...", "anything/at/all", nil, true},
		{"proxy/...", "proxy", nil, true},
		{"proxy/...", "proxy/api", nil, true},
		{"proxy/...", "proxyx", nil, false},
		{"proxy", "proxy/api", nil, false},
		{"!cmd/...", "proxy", nil, true},
		{"!cmd/...", "cmd/tandemd", nil, false},
		{"identity/...|internal/...", "internal/filewatch", nil, true},
		{"identity/...|internal/...", "identity", nil, true},
		{"identity/...|internal/...", "config", nil, false},
		{"!identity/...|internal/...", "internal/filewatch", nil, false},
		{"!identity/...|internal/...", "config", nil, true},
		{"components/*/*/...", "components/state", nil, false},
		{"components/*/*/...", "components/state/redis", nil, true},
		{"components/*/*/...", "components/state/redis/internal/x", nil, true},
		{"components/{!kind}/...", "components/pubsub", map[string]string{"kind": "state"}, true},
		{"components/{!kind}/...", "components/state/inmemory", map[string]string{"kind": "state"}, false},
		{"components/{!kind}/...", "components", map[string]string{"kind": "state"}, false},
		{"components/{!kind}/...", "components/state", nil, false}, // unbound: never matches
		{"cmd/{bin}/...", "cmd/tandem/internal/home", map[string]string{"bin": "tandem"}, true},
		{"cmd/{bin}/...", "cmd/sentry", map[string]string{"bin": "tandem"}, false},
	} {
		t.Run(c.pattern+"~"+c.pkg, func(t *testing.T) {
			if _, got := match(c.pattern, c.pkg, c.vars); got != c.want {
				t.Errorf("match(%q, %q, %v) = %v, want %v", c.pattern, c.pkg, c.vars, got, c.want)
			}
		})
	}
	vars, _ := match("components/{kind}/*/...", "components/pubsub/redis", nil)
	if vars["kind"] != "pubsub" {
		t.Errorf("{kind} bound to %q, want pubsub", vars["kind"])
	}
}

// TestCheck runs the rule checker on small made-up graphs, so that the
// dependency test is known to fail when an arrow appears.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		imports map[string][]string
		tests   map[string][]string
		want    []string // "from ~> to" of each violation, in order
	}{
		{name: "clean layering", imports: map[string][]string{
			"cmd/tandemd":                {"proxy", "components/state/builtin", "observe", "cmd/tandemd/internal/x"},
			"cmd/tandemd/internal/x":     nil,
			"proxy":                      {"invoke", "components/state", "proxy/acl"},
			"proxy/acl":                  {"config", "identity"},
			"invoke":                     {"identity", "invoke/resolve"},
			"invoke/resolve":             nil,
			"components":                 nil,
			"components/state":           {"components"},
			"components/state/builtin":   {"components/state", "components/state/redis"},
			"components/state/redis":     {"components", "components/state", "internal/sqlitebusy"},
			"internal/sqlitebusy":        nil,
			"observe":                    {"config", "resiliency"},
			"identity":                   nil,
			"config":                     nil,
			"resiliency":                 nil,
			"sentry/ca":                  {"identity"},
			"components/pubsub":          {"components"},
			"components/pubsub/inmemory": {"components/pubsub"},
		}},
		{name: "leaf imports ours",
			imports: map[string][]string{"identity": {"config"}, "config": nil},
			want:    []string{"identity ~> config"}},
		{name: "leaf subpackage is fine",
			imports: map[string][]string{"config": {"config/internal/y"}, "config/internal/y": nil}},
		{name: "leaf imports a shared internal leaf",
			imports: map[string][]string{"identity": {"internal/filewatch"}, "internal/filewatch": nil}},
		{name: "shared internal leaf imports ours",
			imports: map[string][]string{"identity": {"internal/filewatch"}, "internal/filewatch": {"config"}, "config": nil},
			want:    []string{"identity ~> config", "internal/filewatch ~> config"}},
		{name: "backend imports another kind",
			imports: map[string][]string{
				"components/pubsub/redis": {"components/pubsub", "components/state"},
				"components/pubsub":       nil, "components/state": nil},
			want: []string{"components/pubsub/redis ~> components/state"}},
		{name: "backend imports observe through a helper",
			imports: map[string][]string{
				"components/state/redis": {"helpers/metricsx"},
				"helpers/metricsx":       {"observe"}, "observe": nil},
			want: []string{"components/state/redis ~> observe"}},
		{name: "kind package may not reach proxy either",
			imports: map[string][]string{"components/state": {"proxy/apierr"}, "proxy/apierr": nil},
			want:    []string{"components/state ~> proxy/apierr"}},
		{name: "invoke test imports proxy",
			imports: map[string][]string{"invoke": nil, "proxy": {"invoke"}},
			tests:   map[string][]string{"invoke": {"proxy"}},
			want:    []string{"invoke ~> proxy"}},
		{name: "invoke reaches components transitively",
			imports: map[string][]string{
				"invoke/resolve/sqlite": {"helpers/z"}, "helpers/z": {"components"}, "components": nil},
			want: []string{"invoke/resolve/sqlite ~> components"}},
		{name: "sentry imports invoke",
			imports: map[string][]string{"sentry/server": {"invoke/transport"}, "invoke/transport": nil},
			want:    []string{"sentry/server ~> invoke/transport"}},
		{name: "binary imports another binary's package",
			imports: map[string][]string{"cmd/sentry": {"cmd/tandem/internal/home"}, "cmd/tandem/internal/home": nil},
			want:    []string{"cmd/sentry ~> cmd/tandem/internal/home"}},
		{name: "library imports a binary's package",
			imports: map[string][]string{"proxy": {"cmd/tandemd"}, "cmd/tandemd": nil},
			want:    []string{"proxy ~> cmd/tandemd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := graph{imports: c.imports, tests: c.tests}
			if g.tests == nil {
				g.tests = map[string][]string{}
			}
			var got []string
			for _, v := range check(g, forbidden) {
				got = append(got, v.path[0]+" ~> "+v.path[len(v.path)-1])
				if msg := v.String(); !strings.Contains(msg, v.rule.why) {
					t.Errorf("message %q does not give the rule's reason", msg)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("violations %q, want %q", got, c.want)
			}
		})
	}
}
