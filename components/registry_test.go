package components

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
)

func TestVersionsBuild(t *testing.T) {
	vs := Versions[string]{Default: "v1", New: map[string]func() string{
		"v1": func() string { return "one" },
		"v2": func() string { return "two" },
	}}
	for _, tc := range []struct{ version, want, wantErr string }{
		{"", "one", ""},
		{"v1", "one", ""},
		{"v2", "two", ""},
		{" V2 ", "two", ""},
		{"v3", "", `state.pg has no version "v3"; set spec.version to one of v1, v2 (empty means v1)`},
	} {
		got, err := vs.Build("state.pg", tc.version)
		switch {
		case tc.wantErr != "":
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Build(%q) = %q, %v; want error %q", tc.version, got, err, tc.wantErr)
			}
		case err != nil || got != tc.want:
			t.Errorf("Build(%q) = %q, %v; want %q", tc.version, got, err, tc.want)
		}
	}
}

// TestManagerPicksByVersion: a type in Kind.Versioned is built by its
// spec.version, and a version it lacks fails for good, naming the file,
// the field and the versions there are.
func TestManagerPicksByVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		built := map[*inst]string{}
		mk := func(version string) func() *inst {
			return func() *inst {
				i := &inst{}
				mu.Lock()
				built[i] = version
				mu.Unlock()
				return i
			}
		}
		k := newFakeKind().kind()
		k.Versioned = map[string]Versions[*inst]{"state.versioned": {Default: "v1", New: map[string]func() *inst{
			"v1": mk("v1"), "v2": mk("v2"),
		}}}
		m := NewManager(k, ManagerOptions{Resolve: Env{AppID: "app"}.Resolve})
		defer m.Close()
		withVersion := func(name, version string) Component {
			c := comp(name)
			c.Type, c.Version = "state.versioned", version
			return c
		}
		m.Apply([]Component{withVersion("a", ""), withVersion("b", "v1"), withVersion("c", "v2"), withVersion("d", "v9"), comp("plain")})
		err := m.Wait(context.Background())
		if err == nil || !strings.Contains(err.Error(), `d.yaml: component "d": spec.version: state.versioned has no version "v9"; set spec.version to one of v1, v2`) {
			t.Fatalf("Wait = %v", err)
		}
		for name, want := range map[string]string{"a": "v1", "b": "v1", "c": "v2"} {
			v, err := m.Registry().Ready(name)
			mu.Lock()
			got := built[v]
			mu.Unlock()
			if err != nil || got != want {
				t.Errorf("%s: built %q (%v), want %s", name, got, err, want)
			}
		}
		if _, err := m.Registry().Ready("plain"); err != nil {
			t.Errorf("a type outside Versioned still comes from New: %v", err)
		}
		if _, st, _ := m.Registry().Get("d"); st.State != StateFailed {
			t.Errorf("unknown version: state %v, want FAILED (not retried)", st.State)
		}
	})
}

// TestManagerRefusesUnknownVersion: a type with one version takes
// spec.version v1 or none, and anything else fails for good, as in Dapr.
func TestManagerRefusesUnknownVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManager(newFakeKind().kind(), ManagerOptions{Resolve: Env{AppID: "app"}.Resolve})
		defer m.Close()
		none, upper, two := comp("none"), comp("upper"), comp("two")
		none.Version, upper.Version, two.Version = "", "V1", "v2"
		m.Apply([]Component{none, upper, two})
		err := m.Wait(context.Background())
		if err == nil || !strings.Contains(err.Error(), `two.yaml: component "two": spec.version: state.fake has no version "v2": the only one is v1`) {
			t.Fatalf("Wait = %v", err)
		}
		for _, name := range []string{"none", "upper"} {
			if _, err := m.Registry().Ready(name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, st, _ := m.Registry().Get("two"); st.State != StateFailed {
			t.Errorf("unknown version: state %v, want FAILED", st.State)
		}
	})
}
