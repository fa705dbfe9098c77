package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	httpbinding "github.com/tandemrun/tandem/components/bindings/http"
	"github.com/tandemrun/tandem/components/lock"
	redislock "github.com/tandemrun/tandem/components/lock/redis"
	"github.com/tandemrun/tandem/proxy/appchannel/h1"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestBlocksLoad measures the building blocks of issue 15 that have a
// direct counterpart, each in one run against it:
//   - lock: a TryLock and its Unlock through tandemd's
//     /v1.0-alpha1/lock and /unlock (lock.redis) against the same pair
//     done by the lock.redis store in-process and by go-redis straight to
//     Redis (SET NX EX, then the compare-and-delete script);
//   - binding: an output binding call through tandemd's /v1.0/bindings
//     (bindings.http, operation post, to test/bench/echoapp) against the
//     same POST sent straight to the echo app and through the
//     bindings.http component in-process.
//
// It writes results/blocks.md.
func TestBlocksLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestBlocksLoad -v -timeout 10m (see test/bench/README.md)")
	}
	addr := os.Getenv("TANDEM_BENCH_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	if err := reachable(addr); err != nil {
		t.Skipf("redis at %s not reachable (set TANDEM_BENCH_REDIS): %v", addr, err)
	}
	seconds := benchSeconds(t, "TANDEM_BENCH_SECONDS", 10)
	warmup := benchSeconds(t, "TANDEM_BENCH_WARMUP_SECONDS", 2)
	workers := int(benchNum(t, "TANDEM_BENCH_CONNECTIONS", 16))
	payload := int(benchNum(t, "TANDEM_BENCH_PAYLOAD_BYTES", 1024))
	if workers < 1 || payload < 2 {
		t.Fatal("TANDEM_BENCH_CONNECTIONS must be at least 1 and TANDEM_BENCH_PAYLOAD_BYTES at least 2")
	}
	bins := benchBinaries(t)
	loadBefore := machine().LoadAvg

	echo := framework.StartApp(t, "echo app", buildEchoApp(t, bins), "APP_ID=bindingtarget")
	echoURL := fmt.Sprintf("http://127.0.0.1:%d/echo", echo.Port)
	// The lock store's keys are the resource IDs under the app ID's prefix
	// (daprd's layout); an app ID of our own keeps the run apart from other
	// users of this Redis.
	appID := randomName("tbenchlock")
	dir := t.TempDir()
	res := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: lockstore
spec:
  type: lock.redis
  version: v1
  metadata:
  - name: redisHost
    value: %q
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: echo
spec:
  type: bindings.http
  version: v1
  metadata:
  - name: url
    value: %q
`, addr, echoURL)
	if err := os.WriteFile(filepath.Join(dir, "components.yaml"), []byte(res), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: appID, ResourcesDir: dir, Args: []string{"--log-level", "info"},
	})
	idle, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	// The binding's data is a JSON string: daprd and tandemd hand the
	// binding its JSON encoding, so body (payload bytes with the quotes)
	// is what every path sends the echo app and gets back.
	body := []byte(`"` + strings.Repeat("x", payload-2) + `"`)
	bindingBody := fmt.Appendf(nil, `{"operation":"post","data":%s}`, body)
	resource := func(w, i int) string { return fmt.Sprintf("r-%d-%d", w, i%64) }
	owner := func(w int) string { return fmt.Sprintf("owner-%d", w) }
	prefix, err := lock.PrefixOf(components.Metadata{Name: "lockstore"})
	if err != nil {
		t.Fatal(err)
	}
	key := func(w, i int) string {
		k, err := prefix.KeyOf(resource(w, i), "lockstore", appID)
		if err != nil {
			panic(err)
		}
		return k
	}
	unlockScript := goredis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return -1`)

	// Every worker has its own keep-alive HTTP connection (the lean h1
	// client), its own go-redis client and its own store and binding
	// instances, each with a pool of 1.
	scc := make([]*http.Client, workers)
	echoc := make([]*http.Client, workers)
	plain := make([]*goredis.Client, workers)
	stores := make([]*redislock.Store, workers)
	outs := make([]*httpbinding.Binding, workers)
	for w := range workers {
		scc[w] = &http.Client{Timeout: 10 * time.Second, Transport: h1.New(h1.Config{Addr: strings.TrimPrefix(sc.HTTPURL(), "http://"), MaxIdle: 1})}
		echoc[w] = &http.Client{Timeout: 10 * time.Second, Transport: h1.New(h1.Config{Addr: fmt.Sprintf("127.0.0.1:%d", echo.Port), MaxIdle: 1})}
		plain[w] = goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 1, Protocol: 2, DisableIdentity: true})
		stores[w] = redislock.New()
		if err := stores[w].Init(ctx, components.Metadata{Name: "lockstore", Type: redislock.Type, Properties: map[string]string{"redisHost": addr, "poolSize": "1"}}); err != nil {
			t.Fatal(err)
		}
		outs[w] = httpbinding.New(slog.New(slog.DiscardHandler))
		if err := outs[w].Init(ctx, components.Metadata{Name: "echo", Type: httpbinding.Type, Properties: map[string]string{"url": echoURL}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = plain[w].Close(); _ = stores[w].Close(); _ = outs[w].Close() })
	}
	lockURL, unlockURL := sc.HTTPURL()+"/v1.0-alpha1/lock/lockstore", sc.HTTPURL()+"/v1.0-alpha1/unlock/lockstore"
	bindingURL := sc.HTTPURL() + "/v1.0/bindings/echo"

	ops := map[string]func(w, i int) error{
		"lock sidecar": func(w, i int) error {
			lb := fmt.Appendf(nil, `{"resourceId":%q,"lockOwner":%q,"expiryInSeconds":30}`, resource(w, i), owner(w))
			if err := httpDo(scc[w], http.MethodPost, lockURL, lb, http.StatusOK, len(`{"success":true}`)); err != nil {
				return err
			}
			ub := fmt.Appendf(nil, `{"resourceId":%q,"lockOwner":%q}`, resource(w, i), owner(w))
			return httpDo(scc[w], http.MethodPost, unlockURL, ub, http.StatusOK, -1)
		},
		"lock component": func(w, i int) error {
			ok, err := stores[w].TryLock(ctx, key(w, i), owner(w), 30)
			if err != nil || !ok {
				return fmt.Errorf("trylock: %v, %v", ok, err)
			}
			st, err := stores[w].Unlock(ctx, key(w, i), owner(w))
			if err != nil || st != lock.Success {
				return fmt.Errorf("unlock: %v, %v", st, err)
			}
			return nil
		},
		"lock direct": func(w, i int) error {
			ok, err := plain[w].SetNX(ctx, key(w, i), owner(w), 30*time.Second).Result()
			if err != nil || !ok {
				return fmt.Errorf("set nx: %v, %v", ok, err)
			}
			n, err := unlockScript.Run(ctx, plain[w], []string{key(w, i)}, owner(w)).Int()
			if err != nil || n != 1 {
				return fmt.Errorf("unlock script: %d, %v", n, err)
			}
			return nil
		},
		"binding sidecar": func(w, _ int) error {
			return httpDo(scc[w], http.MethodPost, bindingURL, bindingBody, http.StatusOK, payload)
		},
		"binding component": func(w, _ int) error {
			resp, err := outs[w].Invoke(ctx, &bindings.InvokeRequest{Operation: "post", Data: body})
			switch {
			case err != nil:
				return err
			case len(resp.Data) != payload:
				return fmt.Errorf("binding answered %d bytes, want %d", len(resp.Data), payload)
			}
			return nil
		},
		"binding direct": func(w, _ int) error {
			return httpDo(echoc[w], http.MethodPost, echoURL, body, http.StatusOK, payload)
		},
	}
	// A lock a failed run left behind would fail the next one: the keys go
	// at the end, and before each lock run.
	clean := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	dropKeys := func() {
		for w := range workers {
			for i := range 64 {
				_ = clean.Del(ctx, key(w, i)).Err()
			}
		}
	}
	t.Cleanup(func() { dropKeys(); _ = clean.Close() })

	order := []string{"direct", "component", "sidecar"}
	blocks := []string{"lock", "binding"}
	for _, b := range blocks {
		for _, path := range order {
			dropKeys()
			if s := closedLoop(workers, warmup, ops[b+" "+path]); s.Errors > 0 {
				t.Fatalf("warm-up %s %s: %d errors, first: %s", b, path, s.Errors, s.FirstErr)
			}
		}
	}

	cpu := NewProcCPU()
	readCPU := cpu.CPUOrUnknown
	peer := map[string]int{"lock": findPID("redis-server"), "binding": echo.PID()}
	sampler := StartRSSSampler(50*time.Millisecond, sc.PID())
	var runs []pathRun
	for _, b := range blocks {
		for _, path := range order {
			dropKeys()
			scBefore, pBefore, cBefore := readCPU(sc.PID()), readCPU(peer[b]), selfCPU()
			s := closedLoop(workers, seconds, ops[b+" "+path])
			run := pathRun{Op: b, Path: path, Stats: s, ClientCPU: selfCPU() - cBefore, PeerCPU: -1}
			if path == "sidecar" {
				run.SidecarCPU = readCPU(sc.PID()) - scBefore
			}
			if pBefore >= 0 {
				run.PeerCPU = readCPU(peer[b]) - pBefore
			}
			t.Logf("%s %s: %.0f ops/s, %d ops, %d errors, p50 %.3f ms, p99 %.3f ms", b, path, s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P99))
			runs = append(runs, run)
		}
	}
	peak := sampler.Stop()[0]
	after, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}
	md := blocksMarkdown(runs, blocksEnv{
		workers: workers, payload: payload, seconds: seconds, warmup: warmup,
		loadBefore: loadBefore, loadAfter: machine().LoadAvg, idle: idle.RSS, peak: peak, hwm: after.HWM,
	})
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_BLOCKS_OUT", filepath.Join("results", "blocks.md"), md)
	for _, r := range runs {
		if r.Stats.Errors > 0 {
			t.Errorf("%s %s: %d of %d operations failed, first: %s", r.Op, r.Path, r.Stats.Errors, r.Stats.Ops, r.Stats.FirstErr)
		}
	}
}

type blocksEnv struct {
	workers, payload      int
	seconds, warmup       time.Duration
	loadBefore, loadAfter string
	idle, peak, hwm       uint64
}

func blocksMarkdown(runs []pathRun, e blocksEnv) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	writeReportHead(&b, "Lock and output binding load benchmark", e.loadBefore, e.loadAfter)
	p("- load: %d workers, each with its own connection, each sending its next operation as soon as the previous one returned; %s per run after %s warm-up of each path\n", e.workers, e.seconds, e.warmup)
	p("- **lock**: one operation = a TryLock and its Unlock of one of 64 resources per worker. **sidecar** = lean HTTP/1.1 client (`proxy/appchannel/h1`) → tandemd `POST /v1.0-alpha1/lock/lockstore` then `/unlock/lockstore` → lock.redis → Redis; **component** = the `components/lock/redis` store in-process (SET NX EX, compare-and-delete script); **direct** = go-redis, the same two commands\n")
	p("- **binding**: one operation = an output binding call with a %d-byte body (a JSON string, quotes included), echoed back. **sidecar** = the same client → tandemd `POST /v1.0/bindings/echo` (`{\"operation\":\"post\",\"data\":…}`) → bindings.http → `test/bench/echoapp`; **component** = the `components/bindings/http` binding in-process → echo app; **direct** = the client's `POST` straight to the echo app\n", e.payload)
	p("- the load generator (this process), tandemd, redis-server and the echo app share the same CPUs\n\n")

	find := func(block, path string) (pathRun, bool) {
		for _, r := range runs {
			if r.Op == block && r.Path == path {
				return r, true
			}
		}
		return pathRun{}, false
	}
	p("## Through the sidecar against direct\n\n| figure | value |\n|---|---|\n")
	for _, blk := range []string{"lock", "binding"} {
		s, ok := find(blk, "sidecar")
		for _, base := range []string{"direct", "component"} {
			d, okd := find(blk, base)
			if !ok || !okd || d.Stats.Rate() == 0 {
				continue
			}
			p("| %s ops/s through the sidecar ÷ %s | %.2f× (%.0f / %.0f) |\n", blk, base, s.Stats.Rate()/d.Stats.Rate(), s.Stats.Rate(), d.Stats.Rate())
			p("| %s p50 added by the sidecar over %s | %.3f ms |\n", blk, base, ms(s.Stats.P50-d.Stats.P50))
		}
	}
	p("\n## Runs\n\n| block | path | ops/s | ops | errors | p50 ms | p90 ms | p99 ms | max ms | sidecar CPU ms / 1000 ops | redis-server or echo app CPU ms / 1000 ops | client CPU ms / 1000 ops |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		sc := "–"
		if r.Path == "sidecar" {
			sc = r.perK(r.SidecarCPU)
		}
		s := r.Stats
		p("| %s | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n",
			r.Op, r.Path, s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), sc, r.perK(r.PeerCPU), r.perK(r.ClientCPU))
	}
	p("\n## Sidecar memory\n\n| idle VmRSS | max sampled VmRSS (all runs) | VmHWM (after all runs) |\n|---|---|---|\n| %s | %s | %s |\n",
		mib(e.idle), mib(e.peak), mib(e.hwm))
	return b.String()
}
