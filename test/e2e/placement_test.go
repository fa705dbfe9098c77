package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// placementReplica is one running Tandem placement process.
type placementReplica struct {
	*framework.Process
	ID          string
	Addr        string
	HealthzPort int
	MetricsPort int
}

// startTandemPlacement starts n replicas of Tandem's placement as one Raft
// cluster (plaintext) and waits for their /healthz. extra flags go to
// every replica.
func startTandemPlacement(t *testing.T, n int, extra ...string) []*placementReplica {
	t.Helper()
	reps := make([]*placementReplica, n)
	var cluster []string
	for i := range reps {
		reps[i] = &placementReplica{ID: fmt.Sprintf("p%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t)),
			HealthzPort: framework.FreePort(t), MetricsPort: framework.FreePort(t)}
		cluster = append(cluster, fmt.Sprintf("%s=127.0.0.1:%d", reps[i].ID, framework.FreePort(t)))
	}
	for _, r := range reps {
		args := append([]string{
			"--id=" + r.ID, "--port=" + strings.TrimPrefix(r.Addr, "127.0.0.1:"), "--listen-address=127.0.0.1",
			"--healthz-port=" + fmt.Sprint(r.HealthzPort), "--healthz-listen-address=127.0.0.1",
			"--metrics-port=" + fmt.Sprint(r.MetricsPort), "--metrics-listen-address=127.0.0.1",
			"--initial-cluster=" + strings.Join(cluster, ","), "--metadata-enabled",
		}, extra...)
		r.Process = framework.Start(t, "placement "+r.ID, bins.Placement, args)
	}
	for _, r := range reps {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", r.HealthzPort), 200, 20*time.Second)
		cancel()
		if err != nil {
			t.Fatalf("placement %s: %v\n%s", r.ID, err, r.Output())
		}
	}
	return reps
}

func placementAddrs(reps []*placementReplica) string {
	var a []string
	for _, r := range reps {
		a = append(a, r.Addr)
	}
	return strings.Join(a, ",")
}

// metric reads one unlabelled-or-labelled sample from a replica's metrics.
func (r *placementReplica) metric(name string) (float64, bool) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.MetricsPort))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? ([0-9.e+-]+)$`).FindStringSubmatch(string(b))
	if m == nil {
		return 0, false
	}
	var v float64
	_, err = fmt.Sscan(m[1], &v)
	return v, err == nil
}

// waitLeader waits until exactly one of the live replicas reports itself
// the leader and returns it.
func waitLeader(t *testing.T, reps []*placementReplica, within time.Duration) *placementReplica {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var leaders []*placementReplica
		for _, r := range reps {
			if v, ok := r.metric("dapr_placement_leader_status"); ok && v == 1 {
				leaders = append(leaders, r)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no single placement leader within %s", within)
	return nil
}

// turnTracker records actors in a turn across every app of a test.
type turnTracker struct {
	mu       sync.Mutex
	in       map[string]bool
	overlaps atomic.Int64
}

func (tt *turnTracker) enter(id string) (leave func()) {
	tt.mu.Lock()
	if tt.in[id] {
		tt.overlaps.Add(1)
	}
	tt.in[id] = true
	tt.mu.Unlock()
	return func() {
		tt.mu.Lock()
		tt.in[id] = false
		tt.mu.Unlock()
	}
}

var hostRe = regexp.MustCompile(`"host":"([^"]+)"`)

// TestPlacementLeaderFailover: three Tandem placement replicas and two
// tandemd actor hosts (plus a caller without actors). The placement leader
// is SIGKILLed while calls run: the other replicas elect a new leader, the
// sidecars report to it, and calls keep succeeding (they wait while the
// table is rebuilt). No actor is ever in a turn on two hosts at once, the
// counts are exact, and afterwards every sidecar routes each actor to the
// same one host.
func TestPlacementLeaderFailover(t *testing.T) {
	reps := startTandemPlacement(t, 3)
	leader := waitLeader(t, reps, 30*time.Second)
	place := placementAddrs(reps)
	turns := &turnTracker{in: map[string]bool{}}
	appA, portA := startCounterApp(t, "a", "1m", false)
	appB, portB := startCounterApp(t, "b", "1m", false)
	appA.turns, appB.turns = turns, turns
	sidecar := func(id string, port int) *framework.Sidecar {
		return framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: id, AppPort: port,
			Args: []string{"--placement-host-address", place, "--actors-disseminate-timeout", "30s"}})
	}
	sa, sb, caller := sidecar("counters", portA), sidecar("counters", portB), sidecar("caller", 0)
	sidecars := []*framework.Sidecar{sa, sb, caller}
	for _, s := range sidecars {
		waitActorsReady(t, s)
	}
	if v, _ := leader.metric("dapr_placement_actor_runtimes_total"); v != 2 {
		t.Errorf("leader counts %v actor runtimes, want 2", v)
	}

	const ids = 20
	var ok, failed, afterFailover atomic.Int64
	var failover atomic.Bool
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := sidecars[(w+i)%len(sidecars)]
				url := fmt.Sprintf("%s/v1.0/actors/counter/id-%d/method/add", s.HTTPURL(), rand.IntN(ids))
				resp, err := http.Post(url, "", nil)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				ok.Add(1)
				if failover.Load() {
					afterFailover.Add(1)
				}
			}
		})
	}
	time.Sleep(time.Second)
	leader.Signal(syscall.SIGKILL)
	killedAt := time.Now()
	var rest []*placementReplica
	for _, r := range reps {
		if r != leader {
			rest = append(rest, r)
		}
	}
	next := waitLeader(t, rest, 30*time.Second)
	t.Logf("leader %s killed; %s leads after %s", leader.ID, next.ID, time.Since(killedAt).Round(time.Millisecond))
	for _, s := range sidecars {
		waitActorsReady(t, s)
	}
	t.Logf("all sidecars reconnected %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	failover.Store(true)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d calls failed (%d succeeded); first: %v", n, ok.Load(), firstErr.Load())
	}
	if afterFailover.Load() == 0 {
		t.Errorf("no call succeeded after the failover")
	}
	if n := turns.overlaps.Load(); n != 0 {
		t.Errorf("%d turns overlapped across hosts", n)
	}
	total := 0
	for _, app := range []*counterApp{appA, appB} {
		app.mu.Lock()
		for _, n := range app.counts {
			total += n
		}
		app.mu.Unlock()
	}
	if int64(total) != ok.Load() {
		t.Errorf("apps counted %d calls, %d succeeded", total, ok.Load())
	}
	for v, want := range map[string]float64{"dapr_placement_actor_runtimes_total": 2, "dapr_placement_runtimes_total": 3} {
		if got, _ := next.metric(v); got != want {
			t.Errorf("new leader: %s = %v, want %v", v, got, want)
		}
	}
	// Every sidecar sends each actor to the same host.
	owners := map[string]bool{}
	for i := range ids {
		var seen []string
		for _, s := range sidecars {
			code, body := httpDo(t, http.MethodPost, fmt.Sprintf("%s/v1.0/actors/counter/id-%d/method/add", s.HTTPURL(), i), "")
			m := hostRe.FindStringSubmatch(body)
			if code != 200 || m == nil {
				t.Fatalf("id-%d via %s: %d %s", i, s.AppID, code, body)
			}
			seen = append(seen, m[1])
		}
		if seen[0] != seen[1] || seen[1] != seen[2] {
			t.Errorf("id-%d routed to hosts %v", i, seen)
		}
		owners[seen[0]] = true
	}
	if len(owners) != 2 {
		t.Errorf("actors live on %d hosts after the failover, want 2", len(owners))
	}
	t.Logf("%d calls succeeded, %d after the failover", ok.Load(), afterFailover.Load())
}

// TestPlacementMTLS: placement takes its certificate from sentry and
// serves the sidecars over mTLS; their actor calls work.
func TestPlacementMTLS(t *testing.T) {
	s := framework.StartSentry(t, bins, framework.SentryOptions{})
	reps := startTandemPlacement(t, 1, "--tls-enabled", "--sentry-address="+s.Addr,
		"--trust-anchors-file="+filepath.Join(s.CredsDir, "ca.crt"), "--trust-domain="+s.TrustDomain)
	app, port := startCounterApp(t, "a", "1m", false)
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "counters", AppPort: port, Sentry: s,
		Args: []string{"--placement-host-address", reps[0].Addr}})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: s,
		Args: []string{"--placement-host-address", reps[0].Addr}})
	waitActorsReady(t, sc)
	waitActorsReady(t, caller)
	if code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/counter/m-1/method/add", ""); code != 200 || !strings.Contains(body, `"count":1`) {
		t.Fatalf("actor call over mTLS: %d %s", code, body)
	}
	if app.served.Load() != 1 {
		t.Errorf("app served %d calls", app.served.Load())
	}
	if !strings.Contains(reps[0].Output(), "certificate obtained from sentry") {
		t.Errorf("placement did not get a certificate:\n%s", reps[0].Output())
	}
}

// TestActorResiliency: spec.targets.actors retries an actor call whose app
// answers 500, on the calling sidecar, for a local and a remote actor; a
// type the Resiliency does not list is called once.
func TestActorResiliency(t *testing.T) {
	place := placementAddrs(startTandemPlacement(t, 1))
	res := t.TempDir()
	if err := os.WriteFile(filepath.Join(res, "resiliency.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: actors
spec:
  policies:
    timeouts:
      fast: 5s
    retries:
      fiveRetries:
        policy: constant
        duration: 10ms
        maxRetries: 5
  targets:
    actors:
      counter:
        timeout: fast
        retry: fiveRetries
`), 0o600); err != nil {
		t.Fatal(err)
	}
	app, port := startCounterApp(t, "a", "1m", false)
	host := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "counters", AppPort: port, ResourcesDir: res,
		Args: []string{"--placement-host-address", place}})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", ResourcesDir: res,
		Args: []string{"--placement-host-address", place}})
	plain := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "plain", Args: []string{"--placement-host-address", place}})
	for _, s := range []*framework.Sidecar{host, caller, plain} {
		waitActorsReady(t, s)
	}
	for _, c := range []struct {
		via *framework.Sidecar
		id  string
	}{{host, "local"}, {caller, "remote"}} {
		code, body := httpDo(t, http.MethodPost, c.via.HTTPURL()+"/v1.0/actors/counter/"+c.id+"/method/flaky", "")
		if code != 200 || body != `{"attempts":4}` {
			t.Errorf("%s actor through %s: %d %s", c.id, c.via.AppID, code, body)
		}
	}
	// Without a Resiliency the app's 500 comes back at once.
	if code, _ := httpDo(t, http.MethodPost, plain.HTTPURL()+"/v1.0/actors/counter/once/method/flaky", ""); code != 500 {
		t.Errorf("without resiliency: %d, want 500", code)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if app.flaky["once"] != 1 {
		t.Errorf("without resiliency the app was called %d times", app.flaky["once"])
	}
}
