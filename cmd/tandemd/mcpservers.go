package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/mcp"
	"github.com/tandemrun/tandem/workflow"
)

// mcpResolveWait bounds how long a server's secret references wait for
// their secret store to become ready.
const mcpResolveWait = 30 * time.Second

// newMCPServers builds the MCPServer manager. exec registers the servers'
// workflows on engine; without an engine (no placement) the servers are
// loaded and listed only.
func newMCPServers(o *Options, rc *runtimeComponents, exec *mcp.Executor, engine *workflow.Engine, log *slog.Logger) *mcp.Manager {
	cfg := mcp.ManagerConfig{
		Resolve:    resolveMCP(rc.env),
		Kubernetes: o.Mode == ModeKubernetes,
		Log:        log,
	}
	if engine != nil {
		cfg.Executor = exec
		var once sync.Once
		cfg.OnRegister = func() {
			once.Do(func() {
				log.Debug("Registering workflow actors for internal workflows") // daprd's words
				engine.HostActors()
			})
		}
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
func resolveMCP(env components.Env) func(context.Context, *mcp.Server) (mcp.Resolved, error) {
	return func(ctx context.Context, s *mcp.Server) (mcp.Resolved, error) {
		ctx, cancel := context.WithTimeout(ctx, mcpResolveWait)
		defer cancel()
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
			r, err := resolveMCPOnce(ctx, env, s)
			if err == nil || components.IsPermanent(err) {
				return r, err
			}
			select {
			case <-ctx.Done():
				return r, err
			case <-time.After(wait):
			}
		}
	}
}

func resolveMCPOnce(ctx context.Context, env components.Env, s *mcp.Server) (mcp.Resolved, error) {
	var r mcp.Resolved
	ep := s.Spec.Endpoint
	var t *mcp.HTTPTransport
	if ep.StreamableHTTP != nil {
		t = ep.StreamableHTTP
	} else {
		t = ep.SSE
	}
	if t != nil {
		store := ""
		if t.Auth != nil {
			store = t.Auth.SecretStore
		}
		md, err := resolvePairs(ctx, env, s, store, t.Headers)
		if err != nil {
			return r, fmt.Errorf("headers: %w", err)
		}
		r.Headers = map[string]string{}
		for _, h := range t.Headers {
			r.Headers[h.Name] = md[h.Name]
		}
		if t.Auth != nil && t.Auth.OAuth2 != nil && t.Auth.OAuth2.SecretKeyRef != nil {
			if store == "" {
				store = "kubernetes"
			}
			ref := t.Auth.OAuth2.SecretKeyRef
			md, err := resolvePairs(ctx, env, s, store, []mcp.NameValue{{Name: "clientSecret", SecretKeyRef: ref}})
			if err != nil {
				return r, fmt.Errorf("OAuth2 credential retrieval failed: %w", err)
			}
			r.ClientSecret = md["clientSecret"]
		}
		if t.Auth != nil && t.Auth.SPIFFE != nil && t.Auth.SPIFFE.JWT != nil {
			return r, components.Permanent(errors.New("auth.spiffe needs JWT SVIDs, which Tandem does not request from sentry yet"))
		}
	}
	if ep.Stdio != nil {
		md, err := resolvePairs(ctx, env, s, "", ep.Stdio.Env)
		if err != nil {
			return r, fmt.Errorf("stdio env: %w", err)
		}
		for _, v := range ep.Stdio.Env {
			r.Env = append(r.Env, v.Name+"="+md[v.Name])
		}
	}
	return r, nil
}

// resolvePairs resolves name/value pairs the way component metadata is
// resolved.
func resolvePairs(ctx context.Context, env components.Env, s *mcp.Server, store string, pairs []mcp.NameValue) (map[string]string, error) {
	if len(pairs) == 0 {
		return map[string]string{}, nil
	}
	c := components.Component{Name: s.Name(), SecretStore: store}
	for _, p := range pairs {
		it := components.MetadataItem{Name: p.Name, EnvRef: p.EnvRef}
		if p.Value != nil {
			it.Value, it.HasValue = p.Value.Text, true
		}
		if p.SecretKeyRef != nil {
			it.SecretKeyRef = &components.SecretKeyRef{Name: p.SecretKeyRef.Name, Key: p.SecretKeyRef.Key}
		}
		c.Metadata = append(c.Metadata, it)
	}
	md, err := env.Resolve(ctx, c)
	if err != nil {
		return nil, err
	}
	return md.Properties, nil
}
