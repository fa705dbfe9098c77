package runner

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/localsentry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/tail"
)

// Spec is one app to run.
type Spec struct {
	AppID       string
	AppPort     int    // 0: the app listens on no port (or there is no app)
	AppProtocol string // http (default) | grpc | h2c ...
	// Wasm is the path of a Wasm app the sidecar hosts (tandemd
	// --app-wasm); such an app has no command and no port.
	Wasm           string
	Command        []string
	Dir            string // working folder of the app; current folder if empty
	Env            map[string]string
	ResourcesPaths []string // default: the home's resources
	ConfigFile     string   // default: the home's config.yaml
	HTTPPort       int      // 0: a free port
	GRPCPort       int
	InternalPort   int
	MetricsPort    int
	LogLevel       string
	SidecarArgs    []string // extra tandemd flags
}

// Options configure Run.
type Options struct {
	Home    *home.Home
	Exe     string // the tandem executable (runs the local sentry)
	Sidecar string // the tandemd executable
	Console *Console
	RunFile string // recorded for `tandem stop -f`
	// AppPortTimeout bounds the wait for the app's port (default 60s).
	AppPortTimeout time.Duration
	// StopGrace bounds each process's graceful stop (default 15s).
	StopGrace time.Duration
}

var appIDPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$`)

// Run starts every spec and supervises them until ctx ends (then stops
// them gracefully) or every app has exited. It returns the exit code for
// the tandem process: the app's (the first non-zero one with several).
func Run(ctx context.Context, o Options, specs []Spec) (int, error) {
	if o.AppPortTimeout == 0 {
		o.AppPortTimeout = 60 * time.Second
	}
	if o.StopGrace == 0 {
		o.StopGrace = 15 * time.Second
	}
	if err := o.Home.Check(); err != nil {
		return 1, err
	}
	for _, s := range specs {
		if !appIDPattern.MatchString(s.AppID) {
			return 1, fmt.Errorf("app ID %q is not valid: use letters, digits, '.', '_' and '-' (it becomes a DNS-like name and a SPIFFE ID)", s.AppID)
		}
	}
	sentry, err := localsentry.Ensure(ctx, o.Home, o.Exe, o.Console)
	if err != nil {
		return 1, fmt.Errorf("local sentry: %w", err)
	}
	anchors, err := os.ReadFile(o.Home.TrustAnchors())
	if err != nil {
		return 1, err
	}
	token, err := o.Home.JoinToken()
	if err != nil {
		return 1, err
	}
	multi := len(specs) > 1
	var started []*instance
	stopAll := func() {
		for i := len(started) - 1; i >= 0; i-- {
			started[i].stop(o)
		}
	}
	for _, s := range specs {
		in := &instance{spec: s, o: o, multi: multi, sentry: sentry.Address, placement: sentry.PlacementAddress, anchors: string(anchors), token: token}
		if err := in.start(ctx); err != nil {
			in.stop(o)
			stopAll()
			return 1, err
		}
		started = append(started, in)
	}

	var wg sync.WaitGroup
	for _, in := range started {
		wg.Add(1)
		go func() { defer wg.Done(); in.supervise(ctx) }()
	}
	wg.Wait()
	code := 0
	for _, in := range started {
		if in.code != 0 && code == 0 {
			code = in.code
		}
	}
	return code, nil
}

// instance is one running app and its sidecar.
type instance struct {
	spec   Spec
	o      Options
	multi  bool
	sentry string
	// placement is the local placement service (actors).
	placement string
	anchors   string
	token     string

	rec        *registry.App
	sidecar    *child
	app        *child
	sidecarOut *prefixWriter
	appOut     *prefixWriter
	files      []*os.File
	code       int
}

func (in *instance) say(format string, args ...any) {
	fmt.Fprintf(in.o.Console, format+"\n", args...)
}

func (in *instance) label(kind string) string {
	if in.multi {
		return fmt.Sprintf("== %s - %s == ", kind, in.spec.AppID)
	}
	return "== " + kind + " == "
}

func (in *instance) start(ctx context.Context) error {
	s := &in.spec
	h := in.o.Home
	apps := registry.Dir(h.AppsDir())
	if err := in.clearPrevious(apps); err != nil {
		return err
	}
	var err error
	ports := []struct {
		p    *int
		flag string
	}{
		{&s.HTTPPort, "--dapr-http-port"}, {&s.GRPCPort, "--dapr-grpc-port"},
		{&s.InternalPort, "--dapr-internal-grpc-port"}, {&s.MetricsPort, "--metrics-port"},
	}
	var picked []*int // ports Tandem chose, which it may choose again
	for _, p := range ports {
		if *p.p == 0 {
			picked = append(picked, p.p)
		}
		if *p.p, err = choosePort(*p.p, p.flag); err != nil {
			return fmt.Errorf("app %s: %w", s.AppID, err)
		}
	}
	if s.AppPort != 0 {
		if _, err := choosePort(s.AppPort, "--app-port"); err != nil {
			return fmt.Errorf("app %s: the app's port must be free before it starts: %w", s.AppID, err)
		}
	}
	if len(s.ResourcesPaths) == 0 {
		s.ResourcesPaths = []string{h.ResourcesDir()}
	}
	if s.ConfigFile == "" {
		s.ConfigFile = h.ConfigFile()
	}
	if s.AppProtocol == "" {
		s.AppProtocol = "http"
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}

	if err := os.MkdirAll(h.LogsDir(), 0o700); err != nil {
		return err
	}
	sidecarLog, err := in.openLog(h.SidecarLog(s.AppID))
	if err != nil {
		return err
	}
	appLog, err := in.openLog(h.AppLog(s.AppID))
	if err != nil {
		return err
	}
	in.sidecarOut = newPrefixWriter(in.o.Console, in.label("SIDECAR"))
	in.appOut = newPrefixWriter(in.o.Console, in.label("APP"))

	// A port picked free can be taken by another process (often another
	// `tandem run` picking its own) before the sidecar binds it; the sidecar
	// then exits at once, and it is started again on other free ports.
	for attempt := 1; ; attempt++ {
		err := in.startSidecar(ctx, apps, sidecarLog)
		if err == nil {
			break
		}
		if attempt == 3 || in.sidecar == nil || !in.sidecar.exited() || !lostPickedPort(tail.File(sidecarLog.Name(), 20), picked) {
			return err
		}
		for _, p := range picked {
			if *p, err = freePort(); err != nil {
				return fmt.Errorf("app %s: %w", s.AppID, err)
			}
		}
		in.say("ℹ️  A port picked for %s was taken before its sidecar opened it; trying other free ports", s.AppID)
	}
	in.say("✅  Sidecar for %s is up (pid %d)", s.AppID, in.sidecar.pid())

	if s.Wasm != "" {
		in.say("✅  You're up and running! The Wasm app %s (%s) runs inside its sidecar: HTTP http://127.0.0.1:%d, gRPC 127.0.0.1:%d",
			s.AppID, s.Wasm, s.HTTPPort, s.GRPCPort)
		return nil
	}
	if len(s.Command) == 0 {
		in.say("ℹ️  No app command given: running the sidecar alone. Its HTTP API is http://127.0.0.1:%d", s.HTTPPort)
		return nil
	}
	env := []string{
		"APP_ID=" + s.AppID,
		"APP_PROTOCOL=" + s.AppProtocol,
		"APP_CHANNEL_ADDRESS=127.0.0.1",
		"DAPR_HTTP_PORT=" + strconv.Itoa(s.HTTPPort),
		"DAPR_GRPC_PORT=" + strconv.Itoa(s.GRPCPort),
		"DAPR_METRICS_PORT=" + strconv.Itoa(s.MetricsPort),
	}
	if s.AppPort != 0 {
		env = append(env, "APP_PORT="+strconv.Itoa(s.AppPort))
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+s.Env[k])
	}
	in.say("ℹ️  Starting app %s: %s", s.AppID, strings.Join(s.Command, " "))
	in.app, err = startChild(s.Command[0], s.Command[1:], s.Dir, environ(env...), multiWriter(appLog, in.appOut))
	if err != nil {
		return fmt.Errorf("start app %s (%s): %w; check the command and its folder", s.AppID, s.Command[0], err)
	}
	in.rec.App = registry.NewProc(in.app.pid())
	if err := apps.Save(in.rec); err != nil {
		return err
	}
	if s.AppPort != 0 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.AppPort))
		if err := in.wait(ctx, fmt.Sprintf("app %s to listen on port %d", s.AppID, s.AppPort), in.o.AppPortTimeout, in.app, appLog.Name(), func() bool {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err == nil
		}); err != nil {
			return fmt.Errorf("%w\nif the app listens on another port, pass it with --app-port (it also gets APP_PORT in its environment)", err)
		}
	}
	in.say("✅  You're up and running! %s: app pid %d, sidecar HTTP http://127.0.0.1:%d, gRPC 127.0.0.1:%d. Logs: %s",
		s.AppID, in.app.pid(), s.HTTPPort, s.GRPCPort, filepath.Dir(appLog.Name()))
	return nil
}

// lostPickedPort reports whether a sidecar's log says one of the ports
// Tandem picked was in use when it tried to listen.
func lostPickedPort(log string, picked []*int) bool {
	for _, p := range picked {
		if strings.Contains(log, fmt.Sprintf("port %d is already in use", *p)) {
			return true
		}
	}
	return false
}

// startSidecar starts the sidecar on the spec's ports, records it and waits
// until its APIs are up.
func (in *instance) startSidecar(ctx context.Context, apps registry.Dir, sidecarLog *os.File) error {
	s := &in.spec
	in.say("ℹ️  Starting the sidecar for %s: HTTP port %d, gRPC port %d, mTLS on (sentry %s)", s.AppID, s.HTTPPort, s.GRPCPort, in.sentry)
	var err error
	in.sidecar, err = startChild(in.o.Sidecar, in.sidecarArgs(), "", environ(
		"DAPR_TRUST_ANCHORS="+in.anchors,
		"TANDEM_SENTRY_TOKEN="+in.token,
		"DAPR_HOST_IP="+hostIP(),
	), multiWriter(sidecarLog, in.sidecarOut))
	if err != nil {
		return fmt.Errorf("start the sidecar %s: %w", in.o.Sidecar, err)
	}
	in.rec = &registry.App{
		AppID: s.AppID, CLI: registry.NewProc(os.Getpid()), Sidecar: registry.NewProc(in.sidecar.pid()),
		AppPort: s.AppPort, AppProtocol: s.AppProtocol,
		HTTPPort: s.HTTPPort, GRPCPort: s.GRPCPort, InternalPort: s.InternalPort, MetricsPort: s.MetricsPort,
		Command: s.Command, Dir: s.Dir, RunFile: in.o.RunFile,
		AppLog: in.o.Home.AppLog(s.AppID), SidecarLog: in.o.Home.SidecarLog(s.AppID), Started: time.Now().UTC(),
	}
	if err := apps.Save(in.rec); err != nil {
		return err
	}
	outbound := fmt.Sprintf("http://127.0.0.1:%d/v1.0/healthz/outbound", s.HTTPPort)
	up := 30 * time.Second
	if s.Wasm != "" {
		up = 3 * time.Minute // the first start compiles the module (cached for the next)
	}
	return in.wait(ctx, "the sidecar of "+s.AppID+" to get its certificate and open its APIs", up, in.sidecar, sidecarLog.Name(), func() bool {
		return httpStatus(outbound) == http.StatusNoContent
	})
}

func (in *instance) sidecarArgs() []string {
	s := in.spec
	args := []string{
		"--app-id", s.AppID,
		"--app-protocol", s.AppProtocol,
		"--dapr-http-port", strconv.Itoa(s.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(s.GRPCPort),
		"--dapr-internal-grpc-port", strconv.Itoa(s.InternalPort),
		"--dapr-listen-addresses", "127.0.0.1",
		"--dapr-internal-grpc-listen-address", "127.0.0.1",
		"--metrics-port", strconv.Itoa(s.MetricsPort),
		"--metrics-listen-address", "127.0.0.1",
		"--enable-mtls",
		"--sentry-address", in.sentry,
		"--control-plane-trust-domain", home.TrustDomain,
		"--config", s.ConfigFile,
		"--log-level", s.LogLevel,
	}
	if s.AppPort != 0 {
		args = append(args, "--app-port", strconv.Itoa(s.AppPort))
	}
	if s.Wasm != "" {
		args = append(args, "--app-wasm", s.Wasm)
	}
	if in.placement != "" {
		args = append(args, "--placement-host-address", in.placement)
	}
	for _, r := range s.ResourcesPaths {
		args = append(args, "--resources-path", r)
	}
	return append(args, s.SidecarArgs...)
}

// hostIP is the address other sidecars reach this one at: loopback unless
// the user set DAPR_HOST_IP.
func hostIP() string {
	if v := os.Getenv("DAPR_HOST_IP"); v != "" {
		return v
	}
	return "127.0.0.1"
}

// clearPrevious refuses to start an app ID that another live `tandem run`
// owns, and cleans up what a killed run left behind.
func (in *instance) clearPrevious(apps registry.Dir) error {
	prev, err := apps.Get(in.spec.AppID)
	if err != nil {
		return nil // none, or stale and removed
	}
	if prev.CLI.Alive() {
		return fmt.Errorf("app %q is already running (tandem run pid %d, sidecar HTTP port %d): stop it with `tandem stop --app-id %s`, or choose another --app-id",
			prev.AppID, prev.CLI.PID, prev.HTTPPort, prev.AppID)
	}
	in.say("ℹ️  Cleaning up after an earlier run of %s that was killed (sidecar pid %d, app pid %d)", prev.AppID, prev.Sidecar.PID, prev.App.PID)
	Terminate(prev, 5*time.Second)
	return apps.Remove(prev.AppID, prev.CLI)
}

// Terminate stops a recorded app's processes directly: the sidecar first
// (it drains in-flight calls), then the app, each with SIGTERM and then
// SIGKILL after grace.
func Terminate(a *registry.App, grace time.Duration) {
	for _, p := range []registry.Proc{a.Sidecar, a.App} {
		if !p.Alive() {
			continue
		}
		p.Signal(sigterm)
		deadline := time.Now().Add(grace)
		for p.Alive() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		p.Signal(sigkill)
	}
}

func (in *instance) openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	in.files = append(in.files, f)
	return f, nil
}

// wait polls ready until it is true, printing progress every 2 seconds; it
// fails if proc exits first or timeout passes, with the end of logFile.
func (in *instance) wait(ctx context.Context, what string, timeout time.Duration, proc *child, logFile string, ready func() bool) error {
	start := time.Now()
	nextNote := start.Add(time.Second)
	for {
		if ready() {
			return nil
		}
		if proc.exited() {
			in.flush()
			return fmt.Errorf("gave up waiting for %s: the process exited with code %d; last lines of %s:\n%s", what, proc.code, logFile, tail.File(logFile, 20))
		}
		if time.Since(start) > timeout {
			in.flush()
			return fmt.Errorf("gave up waiting for %s after %s; last lines of %s:\n%s", what, timeout, logFile, tail.File(logFile, 20))
		}
		if time.Now().After(nextNote) {
			in.say("⌛  Waiting for %s (%.0fs)...", what, time.Since(start).Seconds())
			nextNote = nextNote.Add(2 * time.Second)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", what)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (in *instance) flush() {
	if in.appOut != nil {
		in.appOut.Flush()
	}
	if in.sidecarOut != nil {
		in.sidecarOut.Flush()
	}
}

// supervise waits for the app to exit, the sidecar to exit or ctx to end,
// then stops the rest and records the app's exit code.
func (in *instance) supervise(ctx context.Context) {
	appDone := make(<-chan struct{})
	if in.app != nil {
		appDone = in.app.done
	}
	stoppedByUs := false
	select {
	case <-ctx.Done():
		stoppedByUs = true
		in.say("ℹ️  Stopping %s: draining the sidecar, then stopping the app", in.spec.AppID)
	case <-appDone:
		in.say("ℹ️  App %s exited with code %d; stopping its sidecar", in.spec.AppID, in.app.code)
	case <-in.sidecar.done:
		if in.sidecar.code == 0 {
			stoppedByUs = true // `tandem stop` or a graceful shutdown
			in.say("ℹ️  The sidecar of %s stopped; stopping the app", in.spec.AppID)
		} else {
			in.say("❌  The sidecar of %s exited with code %d; stopping the app. Last lines of %s:\n%s",
				in.spec.AppID, in.sidecar.code, in.rec.SidecarLog, tail.File(in.rec.SidecarLog, 20))
		}
	}
	in.stop(in.o)
	switch {
	case in.app != nil:
		in.code = in.app.code
		if stoppedByUs && in.app.sig {
			in.code = 0 // the app died of our SIGTERM: that is a clean stop
		}
	case !stoppedByUs:
		in.code = 1
	}
	in.say("✅  Exited %s (app exit code %d)", in.spec.AppID, in.code)
}

// stop drains the sidecar, stops the app, closes logs and removes the record.
func (in *instance) stop(o Options) {
	in.sidecar.stop(o.StopGrace)
	in.app.stop(o.StopGrace)
	in.flush()
	for _, f := range in.files {
		_ = f.Close()
	}
	in.files = nil
	if in.rec != nil {
		_ = registry.Dir(o.Home.AppsDir()).Remove(in.rec.AppID, in.rec.CLI)
	}
}
