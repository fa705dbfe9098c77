package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/filewatch"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/acl"
)

// liveConfig holds the parts of the Configuration that apply without a
// restart: access control and secret scopes. The --config files are watched
// and a valid change is swapped in atomically; an invalid one is reported
// and the current configuration stays.
type liveConfig struct {
	log     *slog.Logger
	httpApp bool
	cfg     atomic.Pointer[config.Configuration]
	acl     atomic.Pointer[acl.ACL]
	// pipes, once set, follow spec.httpPipeline and spec.appHttpPipeline.
	pipes *pipelineHook
}

func newLiveConfig(cfg *config.Configuration, appProtocol string, log *slog.Logger) (*liveConfig, error) {
	l := &liveConfig{log: log, httpApp: appProtocol == "" || appProtocol == "http" || appProtocol == "https" || appProtocol == "h2c"}
	if err := l.set(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *liveConfig) set(cfg *config.Configuration) error {
	var list *acl.ACL
	spec := cfg.Spec.AccessControl
	if len(spec.Policies) > 0 || cfg.ACLDefaultAction() != config.Allow {
		var err error
		if list, err = acl.Compile(spec, acl.Options{HTTP: l.httpApp}); err != nil {
			return err
		}
		l.log.Info("access control enabled", "default_action", cfg.ACLDefaultAction(), "policies", len(spec.Policies))
	}
	l.acl.Store(list)
	l.cfg.Store(cfg)
	if l.pipes != nil {
		l.pipes.get().configure(cfg)
	}
	return nil
}

// Authorize decides service invocations from other sidecars (proxy.Access).
func (l *liveConfig) Authorize(_ context.Context, caller identity.App, req *invoke.Request) error {
	list := l.acl.Load()
	if list == nil {
		return nil
	}
	m := req.Message.GetMessage()
	verb := ""
	if l.httpApp {
		verb = m.GetHttpExtension().GetVerb().String()
	}
	err := list.Check(caller, m.GetMethod(), verb)
	if err != nil {
		l.log.Debug("invocation denied by access control", "error", err)
	}
	return err
}

// AuthorizeGRPC decides proxied gRPC calls (proxy.Access).
func (l *liveConfig) AuthorizeGRPC(_ context.Context, caller identity.App, method string) error {
	list := l.acl.Load()
	if list == nil {
		return nil
	}
	err := list.Check(caller, method, "")
	if err != nil {
		l.log.Debug("proxied gRPC call denied by access control", "error", err)
	}
	return err
}

// secretAllowed applies the current secrets.scopes.
func (l *liveConfig) secretAllowed(store, key string) bool {
	return l.cfg.Load().SecretAllowed(store, key)
}

// watch polls the configuration files and applies valid changes once they
// have settled (internal/filewatch).
func (l *liveConfig) watch(ctx context.Context, paths []string, interval time.Duration) error {
	if len(paths) == 0 {
		return nil
	}
	read := func() ([]byte, error) { return readFiles(paths), nil }
	w := &filewatch.Watcher{Read: read, Interval: interval, Current: readFiles(paths), Apply: func([]byte) error {
		cfg, err := config.LoadFiles(os.Getenv, paths...)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			err = l.set(cfg)
		}
		if err != nil {
			l.log.Error("configuration changed but is not valid; keeping the current one", "files", paths, "error", err)
			return err
		}
		l.log.Info("configuration reloaded: access control, secret scopes and middleware pipelines apply now; mTLS, tracing, metrics and name resolution changes apply at the next restart", "files", paths)
		return nil
	}}
	return w.Run(ctx)
}

// readFiles returns the files' contents, a missing one marked as such.
func readFiles(paths []string) []byte {
	var out []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			out = append(out, "missing:"+p...)
			continue
		}
		out = append(out, b...)
	}
	return out
}
