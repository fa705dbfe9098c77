// Package resolvers builds the name resolver named by the Configuration's
// spec.nameResolution.component. It is the one place that imports every
// backend; callers (cmd/tandemd) use it instead of importing backends, and
// backends import only package resolve.
package resolvers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/kubernetes"
	"github.com/tandemrun/tandem/invoke/resolve/mdns"
	"github.com/tandemrun/tandem/invoke/resolve/sqlite"
	"github.com/tandemrun/tandem/invoke/resolve/static"
	"github.com/tandemrun/tandem/invoke/resolve/xds"
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
		"xds":        newXDS,
	}
}

// newXDS builds the xds resolver. With a "registry" map in the
// configuration (self-hosted), the sidecar also registers in that SQLite
// file, which `tandem xds` follows, so that peers find it; its lookups
// never read the file.
func newXDS(c resolve.Config) (resolve.Resolver, error) {
	x, err := xds.New(c)
	if err != nil {
		return nil, err
	}
	raw, ok := c.Configuration["registry"]
	if !ok || raw == nil {
		return x, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		_ = x.Close()
		return nil, fmt.Errorf(`xds name resolution: configuration "registry" must be a map (the sqlite resolver's configuration: connectionString, updateInterval...), got %T`, raw)
	}
	if c.Self.AppID == "" {
		_ = x.Close()
		return nil, errors.New(`xds name resolution: configuration "registry" registers this sidecar, but it has no app ID`)
	}
	reg, err := sqlite.New(resolve.Config{Self: c.Self, Configuration: m, Log: c.Log})
	if err != nil {
		_ = x.Close()
		return nil, fmt.Errorf(`xds name resolution: configuration "registry": %w`, err)
	}
	return &registered{Resolver: x, reg: reg}, nil
}

// registered is the xds resolver for lookups plus the sqlite registration
// (row and heartbeat) of this sidecar.
type registered struct {
	*xds.Resolver
	reg *sqlite.Resolver
}

// Run runs the xDS stream and the heartbeat until both return.
func (r *registered) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var xerr error
	wg.Go(func() { xerr = r.Resolver.Run(ctx) })
	err := r.reg.Run(ctx)
	wg.Wait()
	return errors.Join(err, xerr)
}

// Close deregisters and closes the stream.
func (r *registered) Close() error {
	return errors.Join(r.reg.Close(), r.Resolver.Close())
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
