// Package standalone runs the xDS server for self-hosted mode (`tandem
// xds`): apps from the SQLite name-resolution file the sidecars register
// in, Resiliency from a resources folder, and mTLS with an SVID from
// sentry that it keeps renewed.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/resiliency"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/sqlitesource"
)

// Config is what `tandem xds` takes.
type Config struct {
	// Listen is the host:port to serve xDS on.
	Listen string
	// Registry is the SQLite name-resolution file; UpdateInterval its
	// heartbeat validity (the sidecars' updateInterval).
	Registry       string
	UpdateInterval time.Duration
	// ResourcesDirs hold Resiliency documents (unscoped ones apply).
	ResourcesDirs []string
	// TrustDomain is the apps' trust domain ("public", Dapr's default).
	TrustDomain string
	// Namespace is the server's own namespace and the default one of the
	// dial targets ("default").
	Namespace string
	// SentryAddress and TrustAnchors (PEM) give the server its SVID; an
	// empty SentryAddress serves plaintext.
	SentryAddress string
	TrustAnchors  []byte
	// ControlPlaneTrustDomain is sentry's own ("localhost" self-hosted).
	ControlPlaneTrustDomain string
	// Identity, if set, is the server's SVID source, kept current by the
	// caller (the local sentry's process signs its own); SentryAddress is
	// then not used.
	Identity *identity.Source
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener
	Log      *slog.Logger
}

// Run serves until ctx ends.
func Run(ctx context.Context, c Config) error {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "public"
	}
	if c.Namespace == "" {
		c.Namespace = identity.DefaultNamespace
	}
	if c.ControlPlaneTrustDomain == "" {
		c.ControlPlaneTrustDomain = "localhost"
	}
	td, err := spiffeid.TrustDomainFromString(c.TrustDomain)
	if err != nil {
		return fmt.Errorf("trust domain %q: %w", c.TrustDomain, err)
	}
	var set *resiliency.Set
	if len(c.ResourcesDirs) > 0 {
		docs, warns, err := resiliency.LoadDirs(c.ResourcesDirs...)
		if err != nil {
			return err
		}
		for _, w := range warns {
			c.Log.Warn("resiliency", "warning", w.String())
		}
		if set, err = resiliency.Build("", docs, resiliency.WithLogger(c.Log)); err != nil {
			return err
		}
	}
	src, err := sqlitesource.New(sqlitesource.Options{Path: c.Registry, UpdateInterval: c.UpdateInterval, Log: c.Log})
	if err != nil {
		return err
	}
	build := xds.BuildOptions{TrustDomain: td, DefaultNamespace: c.Namespace}
	if set != nil {
		build.Policy = set.ForApp
	}
	srv, err := xds.New(xds.Options{Source: src, Build: build, Log: c.Log})
	if err != nil {
		return err
	}

	var tasks []task.Task
	ident := c.Identity // kept current by the caller if set
	switch {
	case ident != nil:
	case c.SentryAddress != "":
		var renew task.Task
		ident, renew, err = svid(ctx, c, td)
		if err != nil {
			return err
		}
		tasks = append(tasks, renew)
	default:
		c.Log.Warn("no sentry address: serving xDS in plaintext")
	}
	lis := c.Listener
	if lis == nil {
		if lis, err = net.Listen("tcp", c.Listen); err != nil {
			return fmt.Errorf("xds: listen on %s: %w (choose another --port)", c.Listen, err)
		}
	}
	tasks = append(tasks, task.Task{Name: "xds server", Critical: true, Run: func(ctx context.Context) error {
		return srv.Serve(ctx, lis, ident, td)
	}})
	return task.Run(ctx, c.Log, task.Stage{Name: "xds", Tasks: tasks})
}

// svid gets the server's certificate, spiffe://<td>/ns/<ns>/dapr-xds, from
// sentry and returns the task that renews it.
func svid(ctx context.Context, c Config, td spiffeid.TrustDomain) (*identity.Source, task.Task, error) {
	anchors, err := sentryclient.ParseTrustAnchors(c.TrustAnchors)
	if err != nil || len(anchors) == 0 {
		return nil, task.Task{}, errors.New("xds: sentry's trust anchors are required with --sentry-address (set DAPR_TRUST_ANCHORS or --trust-anchors-file)")
	}
	sentryID, err := sentryclient.SentryID(c.ControlPlaneTrustDomain, c.Namespace)
	if err != nil {
		return nil, task.Task{}, err
	}
	cl, err := sentryclient.New(sentryclient.Config{Address: c.SentryAddress, TrustAnchors: anchors, SentryID: sentryID})
	if err != nil {
		return nil, task.Task{}, err
	}
	id, err := identity.AppID(td.Name(), c.Namespace, "dapr-xds")
	if err != nil {
		_ = cl.Close()
		return nil, task.Task{}, err
	}
	src := identity.NewSource()
	src.SetTrustAnchors(anchors)
	rot := &identity.Rotator{ID: id, Issuer: cl, Source: src, Log: c.Log}
	next, err := rot.Renew(ctx)
	if err != nil {
		_ = cl.Close()
		return nil, task.Task{}, fmt.Errorf("xds: certificate from sentry at %s: %w", c.SentryAddress, err)
	}
	c.Log.Info("xds certificate obtained from sentry", "spiffe_id", id.String())
	return src, task.Task{Name: "certificate renewal", Critical: true, Run: func(ctx context.Context) error {
		defer cl.Close()
		return rot.Run(ctx, next)
	}}, nil
}
