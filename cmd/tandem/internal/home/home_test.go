package home

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/resiliency"
)

func TestResolve(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvHome {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, flag, env, want string
	}{
		{"flag wins", "/a", "/b", "/a"},
		{"env", "", "/b", "/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Resolve(tt.flag, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if h.Dir != tt.want {
				t.Fatalf("Dir = %q, want %q", h.Dir, tt.want)
			}
		})
	}
	h, err := Resolve("", env(""))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(h.Dir) != ".tandem" {
		t.Fatalf("default home %q does not end in .tandem", h.Dir)
	}
}

func TestInit(t *testing.T) {
	h := &Home{Dir: filepath.Join(t.TempDir(), "home")}
	if err := h.Check(); err == nil {
		t.Fatal("Check before init: want error")
	}
	start := time.Now()
	first, err := h.Init(InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("init took %s", d)
	}
	if err := h.Check(); err != nil {
		t.Fatal(err)
	}
	for _, w := range first {
		if !w.Created {
			t.Errorf("%s not created on first init", w.Path)
		}
		if _, err := os.Stat(w.Path); err != nil {
			t.Errorf("%s: %v", w.What, err)
		}
	}
	tok1, err := h.JoinToken()
	if err != nil || len(tok1) != 64 {
		t.Fatalf("token %q, %v", tok1, err)
	}
	ca1, _ := os.ReadFile(h.TrustAnchors())

	second, err := h.Init(InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range second {
		if w.Created {
			t.Errorf("%s rewritten by a second init", w.Path)
		}
	}
	if tok2, _ := h.JoinToken(); tok2 != tok1 {
		t.Error("token changed without --force")
	}

	forced, err := h.Init(InitOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range forced {
		if !w.Created {
			t.Errorf("%s not rewritten with Force", w.Path)
		}
	}
	ca3, _ := os.ReadFile(h.TrustAnchors())
	if tok3, _ := h.JoinToken(); tok3 == tok1 || string(ca3) == string(ca1) {
		t.Error("Force kept the old token or CA")
	}
}

// TestDefaultsAreValid loads what init writes with the runtime's own parsers.
func TestDefaultsAreValid(t *testing.T) {
	h := &Home{Dir: t.TempDir()}
	if _, err := h.Init(InitOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(h.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("config warnings: %v", cfg.Warnings)
	}
	if cfg.Spec.NameResolution.Component != "sqlite" {
		t.Errorf("name resolution %q", cfg.Spec.NameResolution.Component)
	}
	set, err := components.Load([]string{h.ResourcesDir()}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Errors) != 0 {
		t.Fatalf("resource errors: %v", set.Errors)
	}
	got := map[string]string{}
	for _, c := range set.Components {
		got[c.Name] = c.Type
	}
	want := map[string]string{"statestore": "state.sqlite", "pubsub": "pubsub.sqlite", "localsecretstore": "secretstores.local.file"}
	for n, typ := range want {
		if got[n] != typ {
			t.Errorf("component %s type %q, want %q", n, got[n], typ)
		}
	}
	rs, warns, err := resiliency.LoadDirs(h.ResourcesDir())
	if err != nil || len(rs) != 1 {
		t.Fatalf("resiliency: %v %v", rs, err)
	}
	if len(warns) != 0 {
		t.Errorf("resiliency warnings: %v", warns)
	}
}
