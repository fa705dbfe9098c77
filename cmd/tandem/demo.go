package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/sqlite"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/proxy"
	"github.com/tandemrun/tandem/sentry/ca"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/sentry/server"
	"github.com/tandemrun/tandem/sentry/validator"
)

func demoCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start sentry, two apps and their sidecars, and invoke one from the other over mTLS",
		Long: `demo runs everything in this process on random loopback ports, with no Docker and
no external server: a sentry CA with a fresh root, two sidecars that get SPIFFE
certificates from it (with a join token), two small HTTP apps and a shared SQLite
name registry. It invokes "orders" from "checkout" through the Dapr HTTP API and
prints each step and the identities each side verified.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return runDemo(cmd.Context(), cmd.OutOrStdout(), log)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the components' own logs")
	return cmd
}

type demo struct {
	out   io.Writer
	log   *slog.Logger
	dir   string
	start time.Time
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.1f ms] %s\n", float64(time.Since(d.start).Microseconds())/1000, fmt.Sprintf(format, args...))
}

func runDemo(parent context.Context, out io.Writer, log *slog.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	dir, err := os.MkdirTemp("", "tandem-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{out: out, log: log, dir: dir, start: time.Now()}

	// Everything runs as tasks in one group, stopped in this order once
	// the demo script ends: sidecars, then the apps, then sentry.
	var plan task.Plan
	script, sidecars := plan.Stage("demo", 0), plan.Stage("sidecars", 0)
	apps, sentry := plan.Stage("apps", 0), plan.Stage("sentry", 0)
	defer plan.Abort(ctx, log)

	// 1. sentry with a fresh CA and a join token; it serves from now on,
	// since the sidecars get their certificates while they are built.
	token := randomToken()
	authority, sentryAddr, sentryTask, err := d.startSentry(ctx, token)
	if err != nil {
		return err
	}
	sentry.Add(sentryTask)

	// 2. two apps.
	ordersPort, ordersTask, err := serveApp("orders app", ordersApp())
	if err != nil {
		return err
	}
	apps.Add(ordersTask)
	checkoutPort, checkoutTask, err := serveApp("checkout app", http.NotFoundHandler())
	if err != nil {
		return err
	}
	apps.Add(checkoutTask)
	d.step("apps listening: orders on 127.0.0.1:%d, checkout on 127.0.0.1:%d", ordersPort, checkoutPort)

	// 3. two sidecars.
	registry := filepath.Join(dir, "registry.db")
	orders, ordersSrc, tasks, err := d.startSidecar(ctx, "orders", ordersPort, registry, sentryAddr, authority, token)
	if err != nil {
		return err
	}
	sidecars.Add(tasks...)
	checkout, checkoutSrc, tasks, err := d.startSidecar(ctx, "checkout", checkoutPort, registry, sentryAddr, authority, token)
	if err != nil {
		return err
	}
	sidecars.Add(tasks...)

	script.Add(task.Task{Name: "demo", Critical: true, Run: func(ctx context.Context) error {
		return d.invoke(ctx, orders, checkout, ordersSrc, checkoutSrc, authority, registry)
	}})
	return plan.Run(ctx, log)
}

// invoke shows what the checkout sidecar sees when it dials the orders
// sidecar, and makes the invocation as an app would.
func (d *demo) invoke(ctx context.Context, orders, checkout *proxy.Sidecar, ordersSrc, checkoutSrc *identity.Source, authority *ca.CA, registry string) error {
	// 4. what the checkout sidecar sees when it dials the orders sidecar.
	if err := d.showHandshake(checkoutSrc, orders.InternalAddr()); err != nil {
		return err
	}

	// 5. the invocation, as an app would make it.
	url := "http://" + checkout.HTTPAddr() + "/v1.0/invoke/orders/method/neworder?priority=high"
	body := `{"item":"espresso beans","quantity":2}`
	d.step("checkout app -> POST %s %s", url, body)
	if err := waitReady(ctx, checkout.HTTPAddr()); err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("invoke orders through checkout's sidecar: %w", err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.step("checkout app <- %s %s", resp.Status, strings.TrimSpace(string(reply)))
	var got struct {
		CallerAppID string `json:"caller_app_id"`
		Query       string `json:"query"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(reply, &got) != nil || got.CallerAppID != "checkout" {
		return fmt.Errorf("demo invocation failed: status %s, body %s", resp.Status, reply)
	}
	ordersSVID, _ := ordersSrc.GetX509SVID()
	fmt.Fprintf(d.out, `
What happened:
  checkout's sidecar resolved "orders" in %s and called it over mutual TLS.
  It verified the server's certificate: %s.
  orders' sidecar verified the client's certificate and told the orders app
  dapr-caller-app-id=%q, taken from the certificate, not from any header.
  Both certificates were issued by the demo's sentry (root serial %s) and are
  renewed at half their lifetime (orders' expires %s).
`, filepath.Base(registry), ordersSVID.ID, got.CallerAppID, authority.ActiveRoot().SerialNumber.Text(16)[:12],
		ordersSVID.Certificates[0].NotAfter.Format(time.RFC3339))
	d.step("demo done; stopping sidecars, apps and sentry")
	return nil
}

func (d *demo) startSentry(ctx context.Context, token string) (*ca.CA, string, task.Task, error) {
	credDir := filepath.Join(d.dir, "creds")
	bundle, _, err := ca.LoadOrGenerate(ca.DefaultPaths(credDir), ca.GenerateOptions{TrustDomain: "localhost"})
	if err != nil {
		return nil, "", task.Task{}, err
	}
	authority, err := ca.New(bundle, ca.Options{WorkloadCertTTL: time.Hour})
	if err != nil {
		return nil, "", task.Task{}, err
	}
	jt, err := validator.NewJoinToken([]validator.Token{{Secret: token, AppIDs: []string{"*"}}})
	if err != nil {
		return nil, "", task.Task{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", task.Task{}, err
	}
	srv, err := server.New(server.Options{
		CA:               authority,
		Validators:       map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_JWKS: jt},
		DefaultValidator: sentryv1.SignCertificateRequest_JWKS,
		TrustDomain:      "localhost", Namespace: "default", Listener: ln,
		Log: d.log.With("component", "sentry"),
	})
	if err != nil {
		return nil, "", task.Task{}, err
	}
	serve := task.Early(ctx, task.Task{Name: "sentry", Critical: true, Run: srv.Run})
	d.step("sentry listening on %s as %s (new root CA, join-token validator, certificates in %s)", ln.Addr(), srv.ID(), credDir)
	return authority, ln.Addr().String(), serve, nil
}

func (d *demo) startSidecar(ctx context.Context, appID string, appPort int, registry, sentryAddr string, authority *ca.CA, token string) (*proxy.Sidecar, *identity.Source, []task.Task, error) {
	sentryID, err := sentryclient.SentryID("localhost", "default")
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := sentryclient.New(sentryclient.Config{Address: sentryAddr, TrustAnchors: authority.TrustAnchors(), SentryID: sentryID, Token: token})
	if err != nil {
		return nil, nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = client.Close()
		}
	}()
	id, err := identity.AppID(identity.DefaultTrustDomain, identity.DefaultNamespace, appID)
	if err != nil {
		return nil, nil, nil, err
	}
	src := identity.NewSource()
	src.SetTrustAnchors(authority.TrustAnchors())
	rot := &identity.Rotator{ID: id, Issuer: client, Source: src, Log: d.log}
	next, err := rot.Renew(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sidecar %s: get certificate from sentry: %w", appID, err)
	}
	svid, _ := src.GetX509SVID()
	d.step("sidecar %-8s got certificate %s (serial %s) from sentry", appID, svid.ID, svid.Certificates[0].SerialNumber.Text(16)[:12])
	log := d.log.With("app_id", appID)
	lns, err := proxy.Listen(proxy.ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
	if err != nil {
		return nil, nil, nil, err
	}
	app, err := proxy.NewApp(proxy.AppConfig{Port: appPort})
	if err != nil {
		lns.Close()
		return nil, nil, nil, err
	}
	r, err := sqlite.New(resolve.Config{Self: resolve.Instance{
		AppID: appID, Namespace: identity.DefaultNamespace, Address: "127.0.0.1",
		InternalPort: lns.InternalPort(), HTTPPort: lns.HTTPPort(), AppPort: appPort,
	}, Configuration: map[string]any{"connectionString": registry}, Log: log})
	if err != nil {
		lns.Close()
		_ = app.Close()
		return nil, nil, nil, err
	}
	resolver := resolve.NewCached(r, time.Second)
	pool := transport.NewPool(transport.Options{Source: src, Log: log})
	invoker, err := invoke.NewClient(invoke.ClientOptions{
		Resolver: resolver, Pool: pool, AppID: appID, Namespace: identity.DefaultNamespace, Local: app.Channel(), Log: log,
	})
	var s *proxy.Sidecar
	if err == nil {
		s, err = proxy.New(proxy.Options{
			Self: proxy.Self{AppID: appID, RuntimeVersion: version}, Listeners: lns, App: app,
			Invocation: proxy.Invocation{Invoker: invoker, Resolver: resolver, Pool: pool},
			Identity:   src, Log: log,
		})
	}
	closeParts := func() error { return errors.Join(resolver.Close(), pool.Close(), app.Close()) }
	if err != nil {
		lns.Close()
		_ = closeParts()
		return nil, nil, nil, err
	}
	ok = true
	tasks := []task.Task{
		{Name: appID + " sidecar", Critical: true, Run: func(ctx context.Context) error {
			return errors.Join(s.Run(ctx), closeParts())
		}},
		{Name: appID + " name resolution heartbeat", Critical: true, Run: r.Run},
		{Name: appID + " certificate rotation", Critical: true, Run: func(ctx context.Context) error {
			return errors.Join(rot.Run(ctx, next), client.Close())
		}},
	}
	d.step("sidecar %-8s HTTP API %s, gRPC API %s, mTLS on %s, registered in the SQLite registry", appID, s.HTTPAddr(), s.GRPCAddr(), s.InternalAddr())
	return s, src, tasks, nil
}

// showHandshake dials addr with src's identity and prints the SPIFFE ID the
// server proved, the way the invoking sidecar does.
func (d *demo) showHandshake(src *identity.Source, addr string) error {
	td := spiffeid.RequireTrustDomainFromString(identity.DefaultTrustDomain)
	conn, err := tls.Dial("tcp", addr, identity.ClientTLS(src, identity.SameTrustDomain(td)))
	if err != nil {
		return fmt.Errorf("mTLS handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	peer, err := identity.PeerID(conn.ConnectionState())
	if err != nil {
		return err
	}
	d.step("mTLS handshake checkout -> %s: server proved %s (%s)", addr, peer, tlsVersion(conn.ConnectionState().Version))
	return nil
}

func tlsVersion(v uint16) string {
	if v == tls.VersionTLS13 {
		return "TLS 1.3"
	}
	return "TLS 1.2"
}

func ordersApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"order_id":      "A-1001",
			"method":        r.Method + " " + r.URL.Path,
			"query":         r.URL.RawQuery,
			"caller_app_id": r.Header.Get("dapr-caller-app-id"),
			"received":      json.RawMessage(body),
		})
	})
}

func serveApp(name string, h http.Handler) (int, task.Task, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, task.Task{}, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return ln.Addr().(*net.TCPAddr).Port, proxy.HTTPTask(name, srv, []net.Listener{ln}, 0), nil
}

func waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1.0/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return errors.New("sidecar did not become ready in 10s")
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
