package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Doc is one MCPServer document of the resource folders (or the
// operator), already filtered by scope.
type Doc struct {
	Raw    []byte
	Source string
}

// ManagerConfig is what a Manager is built from.
type ManagerConfig struct {
	// Executor registers the servers' workflows; nil (no workflow
	// engine): servers are loaded and listed, their workflows are not.
	Executor *Executor
	// Resolve reads a server's secret and environment references.
	Resolve func(ctx context.Context, s *Server) (Resolved, error)
	// JWT returns the sidecar's JWT SVID for an audience, sent where a
	// server sets auth.spiffe.jwt; nil without a workload identity.
	JWT func(audience string) (string, error)
	// Kubernetes forbids the stdio transport.
	Kubernetes bool
	// OnRegister is called once a server's workflows are registered: the
	// workflow engine hosts its actor types then, as daprd registers them
	// for the first MCPServer even without an SDK worker (and not before:
	// an activity run left by a restart must find its server).
	OnRegister func()
	// OnUnregister is called once a registered server's workflows are
	// removed (one call per OnRegister).
	OnUnregister func()
	Log          *slog.Logger
}

// Manager keeps the MCPServer resources in effect: it validates them,
// resolves their references, registers their workflows on the Executor
// and follows changes (hot reload). A server that cannot be loaded stops
// the sidecar (Run returns its error) unless it sets spec.ignoreErrors,
// as in daprd.
type Manager struct {
	cfg     ManagerConfig
	pending chan []Doc // capacity 1: the latest set wins
	ready   atomic.Bool

	mu     sync.RWMutex
	loaded map[string]*Server // validated servers, by name (the metadata API)
	specs  map[string][]byte  // their specs as applied, to tell changes
}

// NewManager returns a Manager with nothing loaded.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, pending: make(chan []Doc, 1), loaded: map[string]*Server{}, specs: map[string][]byte{}}
}

// Update hands the Manager the whole set of MCPServer documents now in
// effect; it does not wait for them to be applied. A set not applied yet
// is replaced by a newer one.
func (m *Manager) Update(docs []Doc) {
	for {
		select {
		case m.pending <- docs:
			return
		default:
		}
		select {
		case <-m.pending:
		default:
		}
	}
}

// Ready reports whether the first set has been applied (the sidecar's
// outbound health waits for it, as daprd's).
func (m *Manager) Ready() bool { return m.ready.Load() }

// Names lists the loaded servers, sorted (the metadata API's mcpServers).
func (m *Manager) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Sorted(maps.Keys(m.loaded))
}

// Run applies the sets handed to Update until ctx ends, then closes the
// servers' connections. It returns the error of a server that cannot be
// loaded and does not set spec.ignoreErrors.
func (m *Manager) Run(ctx context.Context) error {
	defer func() {
		if m.cfg.Executor != nil {
			_ = m.cfg.Executor.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case docs := <-m.pending:
			err := m.apply(ctx, docs)
			m.ready.Store(true)
			if err != nil {
				return err
			}
		}
	}
}

// apply brings the loaded servers in line with docs.
func (m *Manager) apply(ctx context.Context, docs []Doc) error {
	next := map[string]*Server{}
	var order []string
	for _, d := range docs {
		s, err := Parse(d.Raw)
		if err != nil {
			if err := m.failed(false, fmt.Errorf("MCPServer in %s: %w", d.Source, err)); err != nil {
				return err
			}
			continue
		}
		if err := s.Validate(); err != nil {
			if err := m.failed(s.Spec.IgnoreErrors, fmt.Errorf("MCPServer %q failed validation: %w", s.Name(), err)); err != nil {
				return err
			}
			continue
		}
		if err := s.CheckSecurity(m.cfg.Kubernetes); err != nil {
			if err := m.failed(s.Spec.IgnoreErrors, fmt.Errorf("MCPServer %q failed security validation: MCPServer %q: %w", s.Name(), s.Name(), err)); err != nil {
				return err
			}
			continue
		}
		if _, dup := next[s.Name()]; dup {
			m.cfg.Log.Error("MCPServer defined twice; the first definition is kept", "mcpserver", s.Name(), "file", d.Source)
			continue
		}
		next[s.Name()] = s
		order = append(order, s.Name())
	}
	m.mu.RLock()
	var removed []string
	for name := range m.loaded {
		if _, ok := next[name]; !ok {
			removed = append(removed, name)
		}
	}
	m.mu.RUnlock()
	for _, name := range removed {
		m.remove(name)
		m.cfg.Log.Info("MCPServer deleted via hot-reload", "mcpserver", name)
	}
	for _, name := range order {
		s := next[name]
		spec, _ := json.Marshal(s)
		m.mu.RLock()
		old, had := m.specs[name]
		m.mu.RUnlock()
		if had && bytes.Equal(old, spec) {
			continue
		}
		if had {
			m.cfg.Log.Info("Closing existing MCPServer to reload", "mcpserver", s.LogName())
			m.remove(name)
		}
		if err := m.load(ctx, s, spec); err != nil {
			return err
		}
	}
	return nil
}

// load lists the server and registers its workflows.
func (m *Manager) load(ctx context.Context, s *Server, spec []byte) error {
	resolved, err := m.resolve(ctx, s)
	if err != nil {
		return m.failed(s.Spec.IgnoreErrors, fmt.Errorf("MCPServer %q: %w", s.Name(), err))
	}
	resolved.JWT = m.cfg.JWT
	if t := s.http(); t != nil && t.Auth != nil && t.Auth.SPIFFE != nil && t.Auth.SPIFFE.JWT != nil && m.cfg.JWT == nil {
		m.cfg.Log.Warn("MCPServer " + s.Name() + " asks for a SPIFFE JWT, but the sidecar has no workload identity (enable mTLS): no token is sent")
	}
	m.mu.Lock()
	m.loaded[s.Name()], m.specs[s.Name()] = s, spec
	m.mu.Unlock()
	// daprd's words; tools look for them.
	m.cfg.Log.Info("MCPServer loaded: " + s.LogName())
	if m.cfg.Executor == nil {
		return nil
	}
	if err := m.cfg.Executor.Register(ctx, s, resolved); err != nil {
		return m.failed(s.Spec.IgnoreErrors, fmt.Errorf("MCPServer %q: failed to register workflows: %w", s.Name(), err))
	}
	if m.cfg.OnRegister != nil {
		m.cfg.OnRegister()
	}
	return nil
}

func (m *Manager) remove(name string) {
	m.mu.Lock()
	delete(m.loaded, name)
	delete(m.specs, name)
	m.mu.Unlock()
	if m.cfg.Executor != nil && m.cfg.Executor.Unregister(name) && m.cfg.OnUnregister != nil {
		m.cfg.OnUnregister()
	}
}

// resolve reads the server's references; without a resolver, values are
// taken as written and references are an error.
func (m *Manager) resolve(ctx context.Context, s *Server) (Resolved, error) {
	if m.cfg.Resolve != nil {
		return m.cfg.Resolve(ctx, s)
	}
	var r Resolved
	if t := s.http(); t != nil {
		r.Headers = map[string]string{}
		for _, h := range t.Headers {
			if h.SecretKeyRef != nil || h.EnvRef != "" {
				return Resolved{}, fmt.Errorf("header %q: references cannot be resolved in this sidecar", h.Name)
			}
			if h.Value != nil {
				r.Headers[h.Name] = h.Value.Text
			}
		}
	}
	return r, nil
}

// failed logs a server's failure in daprd's words (tools look for them);
// it is returned (the sidecar stops) unless the server ignores errors.
func (m *Manager) failed(ignore bool, err error) error {
	if ignore {
		m.cfg.Log.Error("Ignoring error processing MCPServer: " + err.Error())
		return nil
	}
	m.cfg.Log.Warn("Error processing MCPServer, daprd will exit gracefully: " + err.Error())
	return err
}
