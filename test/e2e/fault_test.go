package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// outcome is one request of a load run.
type outcome struct {
	at      time.Time
	status  int // 0: the client got no answer (err)
	body    string
	err     error
	elapsed time.Duration
}

// load calls url from workers goroutines, each every pause, until stop is
// closed; every request has the client's timeout.
func load(url string, workers int, pause, timeout time.Duration, stop <-chan struct{}) <-chan []outcome {
	client := &http.Client{Timeout: timeout}
	out := make(chan []outcome, 1)
	var mu sync.Mutex
	var all []outcome
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{at: time.Now()}
				resp, err := client.Get(url)
				if err != nil {
					o.err = err
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					o.status, o.body = resp.StatusCode, string(b)
				}
				o.elapsed = time.Since(o.at)
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	go func() {
		wg.Wait()
		out <- all
	}()
	return out
}

func maxElapsed(os []outcome) time.Duration {
	var m time.Duration
	for _, o := range os {
		m = max(m, o.elapsed)
	}
	return m
}

// TestFaultCalleeAppCrash: the callee's app exits in the middle of a load
// run. What the client sees: 200s before; from the crash on, 500
// ERR_DIRECT_INVOKE at once (the callee's sidecar cannot reach its app),
// never a hang.
func TestFaultCalleeAppCrash(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "registry.db")
	app, _ := startFlaky(t, "crashy", framework.SidecarOptions{Registry: registry})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "fcaller", Registry: registry})
	base := caller.HTTPURL() + "/v1.0/invoke/crashy/method/"

	stop := make(chan struct{})
	results := load(base+"echo", 4, 5*time.Millisecond, 5*time.Second, stop)
	time.Sleep(500 * time.Millisecond)
	crashAt := time.Now()
	r := call(t, &http.Client{Timeout: 5 * time.Second}, "GET", base+"crash", nil)
	if r.status != 500 || !strings.Contains(r.body, "ERR_DIRECT_INVOKE") {
		t.Errorf("the crashing request: %d %q, want 500 ERR_DIRECT_INVOKE", r.status, r.body)
	}
	time.Sleep(time.Second)
	if exited, _ := app.Exited(); !exited {
		t.Fatal("the app did not exit on /crash")
	}
	close(stop)
	all := <-results

	var ok, failed int
	var after []outcome
	for _, o := range all {
		switch {
		case o.err != nil:
			t.Errorf("a request got no answer (%s after start): %v", o.elapsed, o.err)
		case o.at.Before(crashAt) && o.status == 200:
			ok++
		case o.at.After(crashAt.Add(100 * time.Millisecond)):
			after = append(after, o)
			if o.status != 500 || !strings.Contains(o.body, "ERR_DIRECT_INVOKE") {
				t.Errorf("after the crash: %d %q, want 500 ERR_DIRECT_INVOKE", o.status, o.body)
			}
			failed++
		}
	}
	if ok == 0 || failed == 0 {
		t.Fatalf("%d successes before the crash, %d failures after it: the run did not cover both", ok, failed)
	}
	if m := maxElapsed(after); m > 500*time.Millisecond {
		t.Errorf("slowest answer after the crash took %s, want fast failures (< 500ms)", m)
	}
	t.Logf("app crash: %d requests, %d ok before, %d failed after (slowest %s, crash request answered in %s)",
		len(all), ok, failed, maxElapsed(after).Round(time.Millisecond), r.elapsed.Round(time.Millisecond))
}

// TestFaultCalleeSidecarRestart: the callee's sidecar is killed (SIGKILL)
// and started again. What the client sees: 500 ERR_DIRECT_INVOKE while it
// is down, after 1 to 3 seconds (Dapr's built-in retries: at most 4 tries
// 1s apart, the invoker's immediate retry counted as one), never a hang;
// and 200 again soon after it is back.
func TestFaultCalleeSidecarRestart(t *testing.T) {
	registry := filepath.Join(t.TempDir(), "registry.db")
	_, callee := startFlaky(t, "kcallee", framework.SidecarOptions{Registry: registry})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "kcaller", Registry: registry})
	client := &http.Client{Timeout: 10 * time.Second}
	url := caller.HTTPURL() + "/v1.0/invoke/kcallee/method/echo"
	if r := call(t, client, "GET", url, nil); r.status != 200 {
		t.Fatalf("before: %d %q", r.status, r.body)
	}

	callee.Kill()
	var down []result
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		r := call(t, client, "GET", url, nil)
		if r.status != 500 || !strings.Contains(r.body, "ERR_DIRECT_INVOKE") {
			t.Errorf("while down: %d %q, want 500 ERR_DIRECT_INVOKE", r.status, r.body)
		}
		if r.elapsed > 3500*time.Millisecond {
			t.Errorf("while down, a call took %s; want a failure within the built-in retries' 3s", r.elapsed)
		}
		down = append(down, r)
	}

	restarted := time.Now()
	callee.Restart()
	var recovered time.Duration
	for {
		r := call(t, client, "GET", url, nil)
		if r.status == 200 {
			recovered = time.Since(restarted)
			break
		}
		if time.Since(restarted) > 15*time.Second {
			t.Fatalf("no success within 15s of the restart (last: %d %q)", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var slowest time.Duration
	for _, r := range down {
		slowest = max(slowest, r.elapsed)
	}
	t.Logf("sidecar killed: %d calls failed while down (slowest %s, first %s); success %s after the restart",
		len(down), slowest.Round(time.Millisecond), down[0].elapsed.Round(time.Millisecond), recovered.Round(time.Millisecond))
}

var metricLine = regexp.MustCompile(`(?m)^(\w+)(?:\{[^}]*\})? ([0-9.e+]+)$`)

// metricValue reads an unlabelled-or-single-series counter from a
// sidecar's /metrics.
func metricValue(t *testing.T, s *framework.Sidecar, name string) float64 {
	t.Helper()
	for _, m := range metricLine.FindAllStringSubmatch(scrape(t, s), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// TestFaultSentryDown: sentry (6s certificates) stops for 5s under load.
// What the client sees: nothing; every call succeeds, the sidecars keep
// their current certificates (renewals fail and are retried) and renew
// once sentry is back.
func TestFaultSentryDown(t *testing.T) {
	sentry := framework.StartSentry(t, bins, framework.SentryOptions{WorkloadTTL: "6s"})
	registry := filepath.Join(t.TempDir(), "registry.db")
	_, callee := startFlaky(t, "scallee", framework.SidecarOptions{Registry: registry, Sentry: sentry})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "scaller", Registry: registry, Sentry: sentry})
	url := caller.HTTPURL() + "/v1.0/invoke/scallee/method/echo"

	stop := make(chan struct{})
	results := load(url, 2, 20*time.Millisecond, 5*time.Second, stop)
	time.Sleep(500 * time.Millisecond)
	sentry.Stop()
	time.Sleep(5 * time.Second)
	failedRenewals := metricValue(t, caller, "dapr_runtime_mtls_workload_cert_rotated_fail_total") +
		metricValue(t, callee, "dapr_runtime_mtls_workload_cert_rotated_fail_total")
	back := time.Now()
	before := []float64{
		metricValue(t, caller, "dapr_runtime_mtls_workload_cert_rotated_total"),
		metricValue(t, callee, "dapr_runtime_mtls_workload_cert_rotated_total"),
	}
	sentry.Restart()
	var renewed time.Duration
	for renewed == 0 {
		if time.Since(back) > 15*time.Second {
			t.Fatalf("sidecars did not renew within 15s of sentry's return")
		}
		time.Sleep(100 * time.Millisecond)
		if metricValue(t, caller, "dapr_runtime_mtls_workload_cert_rotated_total") > before[0] &&
			metricValue(t, callee, "dapr_runtime_mtls_workload_cert_rotated_total") > before[1] {
			renewed = time.Since(back)
		}
	}
	close(stop)
	all := <-results

	failed := 0
	for _, o := range all {
		if o.err != nil || o.status != 200 {
			failed++
			if failed <= 3 {
				t.Errorf("request at %s failed: %d %q %v", o.at.Format("15:04:05.000"), o.status, o.body, o.err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed, want none", failed, len(all))
	}
	if failedRenewals == 0 {
		t.Errorf("no renewal failed while sentry was down: the outage did not cover a renewal")
	}
	if m := maxElapsed(all); m > time.Second {
		t.Errorf("slowest request took %s", m)
	}
	t.Logf("sentry down 5s: %d requests, %d failed, slowest %s; %v failed renewals during the outage; both renewed %s after sentry returned",
		len(all), failed, maxElapsed(all).Round(time.Millisecond), failedRenewals, renewed.Round(time.Millisecond))
}

// faultProxy is a TCP proxy in front of a peer sidecar that passes,
// delays or black-holes traffic. Every mode change cuts the connections
// open at that moment, so each mode starts on fresh connections.
type faultProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    string // pass, delay, blackhole
	delay   time.Duration
	changed chan struct{} // closed on every mode change
	conns   map[net.Conn]struct{}
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, mode: "pass", changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		p.set("pass", 0)
	})
	go p.serve()
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// set switches the mode and cuts open connections.
func (p *faultProxy) set(mode string, delay time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = mode, delay
	close(p.changed)
	p.changed = make(chan struct{})
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *faultProxy) handle(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go p.pump(up, c)
	p.pump(c, up)
}

// pump copies src to dst chunk by chunk, applying the current mode.
func (p *faultProxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode, delay, changed := p.mode, p.delay, p.changed
			p.mu.Unlock()
			switch mode {
			case "blackhole":
				<-changed // hold everything; the change cuts the connection
				return
			case "delay":
				select {
				case <-time.After(delay):
				case <-changed:
					return
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// staticConfig writes a Configuration resolving app IDs from a fixed
// table (nameResolution static).
func staticConfig(t *testing.T, apps map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: fault\nspec:\n  nameResolution:\n    component: static\n    configuration:\n      apps:\n")
	for id, addr := range apps {
		fmt.Fprintf(&b, "        %s: [%q]\n", id, addr)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFaultSlowAndBlackholedPeer puts the callee's sidecar behind a TCP
// proxy (static name resolution points the caller at the proxy) and the
// caller has a 1s timeout policy for it. What the client sees: a slow
// peer costs its delay; a peer slower than the timeout, or one that
// swallows every packet, gets 500 ERR_DIRECT_INVOKE naming the timeout
// after 1s, never a hang; once the network heals, calls succeed again.
func TestFaultSlowAndBlackholedPeer(t *testing.T) {
	app := framework.StartApp(t, "slowpeer app", flakyApp(t), "APP_ID=slowpeer")
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "slowpeer", AppPort: app.Port,
		Args: []string{"--config", staticConfig(t, map[string]string{"unused": "127.0.0.1:1"})}})
	proxy := startFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", callee.InternalPort))
	resources := t.TempDir()
	writeResiliency(t, resources, `  policies:
    timeouts:
      oneSecond: 1s
  targets:
    apps:
      slowpeer: {timeout: oneSecond}
`)
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "pcaller", ResourcesDir: resources,
		Args: []string{"--config", staticConfig(t, map[string]string{"slowpeer": proxy.addr()})}})
	client := &http.Client{Timeout: 5 * time.Second}
	url := caller.HTTPURL() + "/v1.0/invoke/slowpeer/method/echo"

	steps := []struct {
		name       string
		mode       string
		delay      time.Duration
		status     int
		body       string
		minT, maxT time.Duration
	}{
		{name: "healthy", mode: "pass", status: 200, maxT: 500 * time.Millisecond},
		{name: "slow peer (100ms each way)", mode: "delay", delay: 100 * time.Millisecond, status: 200,
			minT: 200 * time.Millisecond, maxT: 900 * time.Millisecond},
		{name: "peer slower than the timeout", mode: "delay", delay: 1500 * time.Millisecond, status: 500,
			body: "timed out after 1s", minT: time.Second, maxT: 1600 * time.Millisecond},
		{name: "black hole", mode: "blackhole", status: 500, body: "timed out after 1s",
			minT: time.Second, maxT: 1600 * time.Millisecond},
		{name: "healed", mode: "pass", status: 200, maxT: 1000 * time.Millisecond},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			proxy.set(s.mode, s.delay)
			r := call(t, client, "POST", url, strings.NewReader("ping"))
			if r.status != s.status || !strings.Contains(r.body, s.body) {
				t.Errorf("got %d %q, want %d with %q", r.status, r.body, s.status, s.body)
			}
			if s.status == 500 && !strings.Contains(r.body, "ERR_DIRECT_INVOKE") {
				t.Errorf("body %q, want ERR_DIRECT_INVOKE", r.body)
			}
			if r.elapsed < s.minT || r.elapsed > s.maxT {
				t.Errorf("took %s, want %s to %s", r.elapsed, s.minT, s.maxT)
			}
			t.Logf("%s: %d in %s", s.name, r.status, r.elapsed.Round(time.Millisecond))
		})
	}
}
