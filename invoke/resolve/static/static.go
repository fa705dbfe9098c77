// Package static resolves app IDs from a fixed table: addresses listed in
// the configuration and/or in a YAML or JSON file that is re-read when it
// changes. It registers nothing; use it when the addresses are known in
// advance (tests, fixed deployments, a sidecar behind a load balancer).
//
// Configuration (spec.nameResolution.configuration):
//
//	apps:            # app ID -> list of sidecar internal gRPC addresses
//	  orders: ["127.0.0.1:50002", "127.0.0.1:50012"]
//	file: /etc/tandem/apps.yaml   # same map, top level or under "apps:"
//	reloadInterval: 1s            # how often the file's mtime is checked
//
// Addresses of an app from both sources are merged (configuration first).
// Namespaces are not used: an app ID means the same in every namespace.
package static

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/internal/conf"
)

// DefaultReloadInterval is how often the file's modification time is
// checked, at most, when the configuration does not say.
const DefaultReloadInterval = time.Second

// Resolver serves the static table.
type Resolver struct {
	inline map[string][]string
	file   string
	every  time.Duration
	log    *slog.Logger

	mu        sync.Mutex
	fromFile  map[string][]string
	modTime   time.Time
	size      int64
	lastCheck time.Time
	counters  map[string]uint64
}

var (
	_ resolve.Resolver = (*Resolver)(nil)
	_ resolve.Lister   = (*Resolver)(nil)
)

// New reads the configuration and, if set, the file (which must exist and
// parse).
func New(cfg resolve.Config) (*Resolver, error) {
	m := conf.Map(cfg.Configuration)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{log: log.With("component", "nameresolution.static"), counters: map[string]uint64{}}
	var err error
	if raw, ok := m.Raw("apps"); ok {
		if r.inline, err = parseApps(raw); err != nil {
			return nil, fmt.Errorf("static name resolution: configuration \"apps\": %w", err)
		}
	}
	if r.file, err = m.String("", "file"); err != nil {
		return nil, fmt.Errorf("static name resolution: %w", err)
	}
	if r.every, err = m.Duration(DefaultReloadInterval, "reloadInterval"); err != nil {
		return nil, fmt.Errorf("static name resolution: %w", err)
	}
	if len(r.inline) == 0 && r.file == "" {
		return nil, errors.New(`static name resolution: configuration needs "apps" (app ID -> addresses) or "file" (path to a YAML/JSON file with that map)`)
	}
	if r.file != "" {
		if err := r.load(); err != nil {
			return nil, fmt.Errorf("static name resolution: %w", err)
		}
		r.lastCheck = time.Now()
	}
	return r, nil
}

// Resolve returns the next address of req.AppID, round robin.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addrs, err := r.List(ctx, req)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	n := r.counters[req.AppID]
	r.counters[req.AppID] = n + 1
	r.mu.Unlock()
	return addrs[n%uint64(len(addrs))], nil
}

// List returns every address configured for req.AppID.
func (r *Resolver) List(_ context.Context, req resolve.Request) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maybeReload()
	out := slices.Clone(r.inline[req.AppID])
	for _, a := range r.fromFile[req.AppID] {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		where := `configuration "apps"`
		if r.file != "" {
			where += " or file " + r.file
		}
		return nil, fmt.Errorf("app %q is not listed in the static name resolution %s; add its sidecar addresses there: %w", req.AppID, where, resolve.ErrNotFound)
	}
	return out, nil
}

// Close does nothing: the static resolver holds no resources.
func (r *Resolver) Close() error { return nil }

// maybeReload re-reads the file when its mtime or size changed, checking
// at most once per reload interval. A bad file keeps the previous table.
// Called with mu held.
func (r *Resolver) maybeReload() {
	if r.file == "" || time.Since(r.lastCheck) < r.every {
		return
	}
	r.lastCheck = time.Now()
	fi, err := os.Stat(r.file)
	if err != nil {
		r.log.Warn("stat static name resolution file; keeping the previous table", "file", r.file, "error", err)
		return
	}
	if fi.ModTime().Equal(r.modTime) && fi.Size() == r.size {
		return
	}
	if err := r.load(); err != nil {
		r.log.Warn("reload static name resolution file; keeping the previous table", "file", r.file, "error", err)
		return
	}
	r.log.Info("reloaded static name resolution file", "file", r.file, "apps", len(r.fromFile))
}

// load reads and parses the file. Called with mu held or before sharing.
func (r *Resolver) load() error {
	fi, err := os.Stat(r.file)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.file, err)
	}
	b, err := os.ReadFile(r.file)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.file, err)
	}
	apps, err := ParseFile(b)
	if err != nil {
		return fmt.Errorf("parse %s: %w", r.file, err)
	}
	r.fromFile, r.modTime, r.size = apps, fi.ModTime(), fi.Size()
	return nil
}

// ParseFile parses a YAML or JSON document mapping app IDs to address
// lists, either at the top level or under an "apps" key.
func ParseFile(b []byte) (map[string][]string, error) {
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	if inner, ok := top["apps"].(map[string]any); ok {
		top = inner
	}
	return parseApps(top)
}

// parseApps converts a decoded map of app ID to addresses (a list, or one
// string) and checks every address is host:port.
func parseApps(raw any) (map[string][]string, error) {
	m, ok := raw.(map[string]any)
	if !ok {
		if raw == nil {
			return map[string][]string{}, nil
		}
		return nil, fmt.Errorf("want a map of app ID to addresses, got %T", raw)
	}
	out := make(map[string][]string, len(m))
	for app, v := range m {
		var list []any
		switch t := v.(type) {
		case string:
			list = []any{t}
		case []any:
			list = t
		case []string:
			for _, s := range t {
				list = append(list, s)
			}
		default:
			return nil, fmt.Errorf("app %q: want a list of host:port addresses, got %T", app, v)
		}
		for _, a := range list {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("app %q: address %v is not a string", app, a)
			}
			if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
				return nil, fmt.Errorf("app %q: address %q is not host:port", app, s)
			}
			if !slices.Contains(out[app], s) {
				out[app] = append(out[app], s)
			}
		}
	}
	return out, nil
}
