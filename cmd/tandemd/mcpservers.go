package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/mcp"
	"github.com/tandemrun/tandem/workflow"
)

// mcpResolveWait bounds how long a server's secret references wait for
// their secret store to become ready.
const mcpResolveWait = 30 * time.Second

// newMCPServers builds the MCPServer manager. exec registers the servers'
// workflows on engine; without an engine (no placement) the servers are
// loaded and listed only.
func newMCPServers(o *Options, rc *runtimeComponents, exec *mcp.Executor, engine *workflow.Engine, src *identity.Source, log *slog.Logger) *mcp.Manager {
	cfg := mcp.ManagerConfig{
		Resolve:    resolveMCP(rc.env, log),
		Kubernetes: o.Mode == ModeKubernetes,
		Log:        log,
	}
	if src != nil {
		cfg.JWT = src.JWT
	}
	if engine != nil {
		cfg.Executor = exec
		cfg.OnRegister = engine.HostActors
		cfg.OnUnregister = func() { engine.ReleaseActors(context.Background()) }
	}
	return mcp.NewManager(cfg)
}

// useMCP hands m the MCPServer documents loaded so far, and those of every
// later change.
func (rc *runtimeComponents) useMCP(m *mcp.Manager) {
	rc.mu.Lock()
	rc.mcp = m
	set := rc.set
	rc.mu.Unlock()
	m.Update(mcpDocs(set))
}

func (rc *runtimeComponents) applyMCP(set *components.Set) {
	rc.mu.RLock()
	m := rc.mcp
	rc.mu.RUnlock()
	if m != nil {
		m.Update(mcpDocs(set))
	}
}

// mcpDocs are the MCPServer documents of set.
func mcpDocs(set *components.Set) []mcp.Doc {
	if set == nil {
		return nil
	}
	var out []mcp.Doc
	for _, d := range set.DocumentsOf(mcp.Kind) {
		out = append(out, mcp.Doc{Raw: d.Raw, Source: d.Source})
	}
	return out
}

// resolveMCP reads a server's header and stdio variable values
// (secretKeyRef from auth.secretStore, envRef with the components' deny
// list) and its OAuth2 client secret (auth.secretStore, "kubernetes" when
// unset, as in daprd). A secret store that is not ready yet is waited for.
// A header or variable that cannot be read is logged and left empty, as
// daprd leaves it; an OAuth2 secret that cannot be read fails the server.
func resolveMCP(env components.Env, log *slog.Logger) func(context.Context, *mcp.Server) (mcp.Resolved, error) {
	return func(ctx context.Context, s *mcp.Server) (mcp.Resolved, error) {
		ctx, cancel := context.WithTimeout(ctx, mcpResolveWait)
		defer cancel()
		var r mcp.Resolved
		ep := s.Spec.Endpoint
		t := ep.StreamableHTTP
		if t == nil {
			t = ep.SSE
		}
		if t != nil {
			store := ""
			if t.Auth != nil {
				store = t.Auth.SecretStore
			}
			r.Headers = map[string]string{}
			for _, h := range t.Headers {
				v, err := resolvePair(ctx, env, s, store, h)
				if err != nil {
					log.Warn("MCPServer header not resolved; it is sent empty", "mcpserver", s.Name(), "header", h.Name, "error", err)
				}
				r.Headers[h.Name] = v
			}
			if t.Auth != nil && t.Auth.OAuth2 != nil && t.Auth.OAuth2.SecretKeyRef != nil {
				if store == "" {
					store = "kubernetes"
				}
				v, err := resolvePair(ctx, env, s, store, mcp.NameValue{Name: "clientSecret", SecretKeyRef: t.Auth.OAuth2.SecretKeyRef})
				if err != nil {
					return r, fmt.Errorf("OAuth2 credential retrieval failed: %w", err)
				}
				r.ClientSecret = v
			}
		}
		if ep.Stdio != nil {
			for _, v := range ep.Stdio.Env {
				val, err := resolvePair(ctx, env, s, "", v)
				if err != nil {
					log.Warn("MCPServer stdio variable not resolved; it is set empty", "mcpserver", s.Name(), "variable", v.Name, "error", err)
				}
				r.Env = append(r.Env, v.Name+"="+val)
			}
		}
		return r, nil
	}
}

// resolvePair resolves one name/value pair the way component metadata is
// resolved, waiting (until ctx ends) for a secret store that is not ready.
func resolvePair(ctx context.Context, env components.Env, s *mcp.Server, store string, p mcp.NameValue) (string, error) {
	it := components.MetadataItem{Name: p.Name, EnvRef: p.EnvRef}
	if p.Value != nil {
		it.Value, it.HasValue = p.Value.Text, true
	}
	if p.SecretKeyRef != nil {
		it.SecretKeyRef = &components.SecretKeyRef{Name: p.SecretKeyRef.Name, Key: p.SecretKeyRef.Key}
	}
	c := components.Component{Name: s.Name(), SecretStore: store, Metadata: []components.MetadataItem{it}}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		md, err := env.Resolve(ctx, c)
		if err == nil {
			return md.Properties[p.Name], nil
		}
		if components.IsPermanent(err) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(wait):
		}
	}
}
