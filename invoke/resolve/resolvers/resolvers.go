// Package resolvers builds the name resolver named by the Configuration's
// spec.nameResolution.component. It is the one place that imports every
// backend; callers (cmd/tandemd) use it instead of importing backends, and
// backends import only package resolve.
package resolvers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/kubernetes"
	"github.com/tandemrun/tandem/invoke/resolve/mdns"
	"github.com/tandemrun/tandem/invoke/resolve/sqlite"
	"github.com/tandemrun/tandem/invoke/resolve/static"
)

// DefaultComponent is used when the Configuration names none, as daprd
// does in self-hosted mode.
const DefaultComponent = "mdns"

// KubernetesDefault is daprd's default in Kubernetes mode.
const KubernetesDefault = "kubernetes"

// Factory builds a resolver from its configuration.
type Factory func(cfg resolve.Config) (resolve.Resolver, error)

// Builtins returns the known backends by component name.
func Builtins() map[string]Factory {
	return map[string]Factory{
		"kubernetes": func(c resolve.Config) (resolve.Resolver, error) { return kubernetes.New(c) },
		"mdns":       func(c resolve.Config) (resolve.Resolver, error) { return mdns.New(c) },
		"sqlite":     func(c resolve.Config) (resolve.Resolver, error) { return sqlite.New(c) },
		"static":     func(c resolve.Config) (resolve.Resolver, error) { return static.New(c) },
	}
}

// Names lists the known component names, sorted.
func Names() []string {
	var names []string
	for n := range Builtins() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New builds the resolver for component ("" means DefaultComponent).
func New(component string, cfg resolve.Config) (resolve.Resolver, error) {
	return NewWithDefault(component, DefaultComponent, cfg)
}

// NewWithDefault builds the resolver for component, or for fallback when
// component is empty. Names are matched case-insensitively.
func NewWithDefault(component, fallback string, cfg resolve.Config) (resolve.Resolver, error) {
	name := strings.ToLower(strings.TrimSpace(component))
	if name == "" {
		name = strings.ToLower(strings.TrimSpace(fallback))
	}
	f, ok := Builtins()[name]
	if !ok {
		return nil, fmt.Errorf("unknown name resolution component %q in spec.nameResolution.component: use one of %s", name, strings.Join(Names(), ", "))
	}
	r, err := f(cfg)
	if err != nil {
		return nil, fmt.Errorf("name resolution %q: %w", name, err)
	}
	return r, nil
}
