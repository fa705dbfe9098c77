package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	redisstate "github.com/tandemrun/tandem/components/state/redis"
	"github.com/tandemrun/tandem/proxy/appchannel/h1"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// pathRun is one measured run of an operation on one path, in the state
// and the building-block benchmarks.
type pathRun struct {
	Op, Path   string // e.g. "save"/"get", "lock"/"binding"; "sidecar", "component", "plain", "direct"
	Stats      opStats
	SidecarCPU time.Duration // the sidecar's (or the floor server's); 0 for direct runs
	PeerCPU    time.Duration // the backend's (redis-server, an echo app); -1 when not visible here
	ClientCPU  time.Duration
}

// perK is d per 1000 operations of the run, in ms; "–" when unknown.
func (r pathRun) perK(d time.Duration) string {
	if d < 0 || r.Stats.Ops == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", ms(d)*1000/float64(r.Stats.Ops))
}

// TestStateLoad measures state save and get through a tandemd (HTTP API,
// state.redis) against the same operations sent straight to Redis, with
// the same number of workers and connections, and writes results/state.md.
func TestStateLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestStateLoad -v -timeout 10m (see test/bench/README.md)")
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
	nkeys := int(benchNum(t, "TANDEM_BENCH_STATE_KEYS", 1000))
	if workers < 1 || nkeys < 1 {
		t.Fatal("TANDEM_BENCH_CONNECTIONS and TANDEM_BENCH_STATE_KEYS must be at least 1")
	}
	bins := benchBinaries(t)
	loadBefore := machine().LoadAvg

	// A key prefix of our own keeps the run apart from other users of this
	// Redis; the keys are deleted at the end.
	prefix := randomName("tbench")
	dir := t.TempDir()
	comp := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: %q
  - name: keyPrefix
    value: %q
`, addr, prefix)
	if err := os.WriteFile(filepath.Join(dir, "state.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "benchstate", ResourcesDir: dir, Args: []string{"--log-level", "info"},
	})
	idle, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}
	floor := startStateFloor(t, bins, addr)
	// Dapr in the same run, when scripts/build-daprd.sh has built daprd:
	// the same component file (Dapr's format), the same client.
	var dsc *framework.Sidecar
	if daprd := daprdForBench(t); daprd != "" {
		dsc = framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: "benchstate", ResourcesDir: dir, Binary: daprd,
			Args: []string{"--log-level", "warn", "--placement-host-address", "", "--scheduler-host-address", ""},
		})
	}

	ctx := context.Background()
	value := stateValue(100)
	key := func(w, i int) int { return (w*nkeys/workers + i) % nkeys }
	name := func(k int) string { return "k-" + strconv.Itoa(k) }
	stored := func(k int) string { return prefix + state.Separator + name(k) }
	saveBodies := make([][]byte, nkeys)
	for k := range saveBodies {
		saveBodies[k] = fmt.Appendf(nil, `[{"key":%q,"value":%s}]`, name(k), value)
	}
	cleanup := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() {
		for k := range nkeys {
			_ = cleanup.Del(ctx, stored(k)).Err()
		}
		_ = cleanup.Close()
	})

	// Every worker has its own HTTP client (one keep-alive connection), its
	// own go-redis client and its own store instance, each with a pool of 1.
	// The HTTP client: a lean keep-alive one by default (h1, the sidecar's
	// own app-channel client: it writes and reads on the calling goroutine,
	// like fortio's fast client the invocation benchmark uses); "nethttp"
	// for Go's net/http Transport.
	clientKind := os.Getenv("TANDEM_BENCH_STATE_CLIENT")
	if clientKind == "" {
		clientKind = "h1"
	}
	if clientKind != "h1" && clientKind != "nethttp" {
		t.Fatalf("TANDEM_BENCH_STATE_CLIENT=%q: use h1 or nethttp", clientKind)
	}
	httpc := make([]*http.Client, workers)
	floorc := make([]*http.Client, workers)
	daprc := make([]*http.Client, workers)
	plain := make([]*goredis.Client, workers)
	stores := make([]*redisstate.Store, workers)
	for w := range workers {
		httpc[w] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
		floorc[w] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
		daprc[w] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
		if clientKind == "h1" {
			httpc[w].Transport = h1.New(h1.Config{Addr: strings.TrimPrefix(sc.HTTPURL(), "http://"), MaxIdle: 1})
			floorc[w].Transport = h1.New(h1.Config{Addr: floor.addr, MaxIdle: 1})
			if dsc != nil {
				daprc[w].Transport = h1.New(h1.Config{Addr: strings.TrimPrefix(dsc.HTTPURL(), "http://"), MaxIdle: 1})
			}
		}
		plain[w] = goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 1, Protocol: 2, DisableIdentity: true})
		stores[w] = redisstate.New(nil)
		md := components.Metadata{Name: "statestore", Type: redisstate.Type, Properties: map[string]string{"redisHost": addr, "poolSize": "1"}}
		if err := stores[w].Init(ctx, md); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = plain[w].Close(); _ = stores[w].Close() })
	}
	base := sc.HTTPURL() + "/v1.0/state/statestore"

	ops := map[string]func(w, i int) error{
		"save sidecar": func(w, i int) error {
			return httpDo(httpc[w], http.MethodPost, base, saveBodies[key(w, i)], http.StatusNoContent, -1)
		},
		"get sidecar": func(w, i int) error {
			return httpDo(httpc[w], http.MethodGet, base+"/"+name(key(w, i)), nil, http.StatusOK, len(value))
		},
		"save daprd": func(w, i int) error {
			return httpDo(daprc[w], http.MethodPost, dsc.HTTPURL()+"/v1.0/state/statestore", saveBodies[key(w, i)], http.StatusNoContent, -1)
		},
		"get daprd": func(w, i int) error {
			return httpDo(daprc[w], http.MethodGet, dsc.HTTPURL()+"/v1.0/state/statestore/"+name(key(w, i)), nil, http.StatusOK, len(value))
		},
		"save floor": func(w, i int) error {
			return httpDo(floorc[w], http.MethodPost, "http://"+floor.addr+"/s/"+stored(key(w, i)), value, http.StatusNoContent, -1)
		},
		"get floor": func(w, i int) error {
			return httpDo(floorc[w], http.MethodGet, "http://"+floor.addr+"/s/"+stored(key(w, i)), nil, http.StatusOK, len(value))
		},
		"save component": func(w, i int) error {
			return stores[w].Set(ctx, &state.SetRequest{Key: stored(key(w, i)), Value: value})
		},
		"get component": func(w, i int) error {
			res, err := stores[w].Get(ctx, &state.GetRequest{Key: stored(key(w, i))})
			return checkValue(res != nil, len(resData(res)), len(value), err)
		},
		"save plain": func(w, i int) error {
			return plain[w].HSet(ctx, stored(key(w, i)), "data", value).Err()
		},
		"get plain": func(w, i int) error {
			m, err := plain[w].HGetAll(ctx, stored(key(w, i))).Result()
			return checkValue(len(m) > 0, len(m["data"]), len(value), err)
		},
	}

	// Preload every key through the sidecar (so the stored layout is the
	// store's own), then warm every path up.
	for k := range nkeys {
		if err := ops["save sidecar"](0, k); err != nil {
			t.Fatalf("preload %s: %v", name(k), err)
		}
	}
	order := []string{"plain", "component", "floor", "sidecar"}
	if dsc != nil {
		order = append(order, "daprd")
	}
	for _, op := range []string{"save", "get"} {
		for _, path := range order {
			if s := closedLoop(workers, warmup, ops[op+" "+path]); s.Errors > 0 {
				t.Fatalf("warm-up %s %s: %d errors, first: %s", op, path, s.Errors, s.FirstErr)
			}
		}
	}

	cpu := NewProcCPU()
	redisPID := findPID("redis-server")
	readCPU := cpu.CPUOrUnknown
	sampler := StartRSSSampler(50*time.Millisecond, sc.PID())
	var runs []pathRun
	for _, op := range []string{"save", "get"} {
		for _, path := range order {
			dPID := 0
			if dsc != nil {
				dPID = dsc.PID()
			}
			scBefore, rBefore, cBefore, floorBefore, dBefore := readCPU(sc.PID()), readCPU(redisPID), selfCPU(), readCPU(floor.pid), readCPU(dPID)
			s := closedLoop(workers, seconds, ops[op+" "+path])
			run := pathRun{Op: op, Path: path, Stats: s, ClientCPU: selfCPU() - cBefore, PeerCPU: -1}
			switch path {
			case "sidecar":
				run.SidecarCPU = readCPU(sc.PID()) - scBefore
			case "floor":
				run.SidecarCPU = readCPU(floor.pid) - floorBefore
			case "daprd":
				run.SidecarCPU = readCPU(dPID) - dBefore
			}
			if rBefore >= 0 {
				run.PeerCPU = readCPU(redisPID) - rBefore
			}
			t.Logf("%s %s: %.0f ops/s, %d ops, %d errors, p50 %.3f ms, p99 %.3f ms",
				op, path, s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P99))
			runs = append(runs, run)
		}
	}
	peak := sampler.Stop()[0]
	peakAnon := sampler.AnonPeaks()[0]
	after, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}

	md := stateMarkdown(runs, stateEnv{
		workers: workers, keys: nkeys, seconds: seconds, warmup: warmup, loadBefore: loadBefore, loadAfter: machine().LoadAvg,
		idle: idle.RSS, idleAnon: idle.Anon, peak: peak, peakAnon: peakAnon, hwm: after.HWM, client: clientKind,
	})
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_STATE_OUT", filepath.Join("results", "state.md"), md)
	for _, r := range runs {
		if r.Stats.Errors > 0 {
			t.Errorf("%s %s: %d of %d operations failed, first: %s", r.Op, r.Path, r.Stats.Errors, r.Stats.Ops, r.Stats.FirstErr)
		}
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// stateFloor is the running test/bench/statefloor server.
type stateFloor struct {
	addr string
	pid  int
}

// startStateFloor builds and starts test/bench/statefloor against Redis.
func startStateFloor(t *testing.T, bins *framework.Binaries, redisAddr string) stateFloor {
	t.Helper()
	bin := filepath.Join(bins.Dir, "statefloor")
	cmd := exec.Command("go", "build", "-o", bin, "./test/bench/statefloor")
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/bench/statefloor: %v\n%s", err, b)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t))
	p := framework.Start(t, "statefloor", bin, []string{"-listen", addr, "-redis", redisAddr})
	if err := framework.WaitTCP(addr, 15*time.Second); err != nil {
		t.Fatalf("statefloor: %v\n%s", err, p.Output())
	}
	return stateFloor{addr: addr, pid: p.PID()}
}

// stateValue is a JSON object of exactly n bytes (n >= 16).
func stateValue(n int) []byte {
	head := `{"id":1,"pad":"`
	return []byte(head + strings.Repeat("x", n-len(head)-2) + `"}`)
}

func resData(r *state.GetResponse) []byte {
	if r == nil {
		return nil
	}
	return r.Data
}

func checkValue(found bool, got, want int, err error) error {
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("key not found")
	case got != want:
		return fmt.Errorf("value of %d bytes, want %d", got, want)
	}
	return nil
}

// httpDo sends one request and checks the status and, if wantLen >= 0, the
// body's length; the body is always read to the end so the connection is
// reused.
func httpDo(c *http.Client, method, url string, body []byte, wantStatus, wantLen int) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != wantStatus:
		return fmt.Errorf("%s %s: status %d, want %d", method, url, resp.StatusCode, wantStatus)
	case wantLen >= 0 && int(n) != wantLen:
		return fmt.Errorf("%s %s: %d bytes, want %d", method, url, n, wantLen)
	}
	return nil
}

// findPID returns the pid of the first process whose name is comm, or 0.
func findPID(comm string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "comm"))
		if err == nil && strings.TrimSpace(string(b)) == comm {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

type stateEnv struct {
	client                string // "h1" or "nethttp"
	workers, keys         int
	seconds, warmup       time.Duration
	loadBefore, loadAfter string
	idle, peak, hwm       uint64
	idleAnon, peakAnon    uint64 // RssAnon, private memory
}

func stateMarkdown(runs []pathRun, e stateEnv) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	writeReportHead(&b, "State load benchmark", e.loadBefore, e.loadAfter)
	p("- load: %d workers, each with its own connection, each sending its next operation as soon as the previous one returned; %s per run after %s warm-up of each path; %d keys (preloaded), 100-byte JSON values\n",
		e.workers, e.seconds, e.warmup, e.keys)
	cl := "Go net/http client (`TANDEM_BENCH_STATE_CLIENT=nethttp`)"
	if e.client == "h1" {
		cl = "lean HTTP/1.1 keep-alive client (`proxy/appchannel/h1`: writes and reads on the calling goroutine, as fortio's fast client does)"
	}
	p("- paths: **sidecar** = %s → tandemd HTTP API (`POST /v1.0/state/statestore` one item; `GET /v1.0/state/statestore/{key}`) → state.redis → Redis, plaintext (the store call is local: no app, no mTLS); ", cl)
	p("**component** = the same `components/state/redis` store called in-process (the same Lua scripts over go-redis: set = HGET version + HSET data + HINCRBY version + PERSIST, get = HMGET data version + TTL); ")
	p("**plain** = go-redis `HSET key data <value>` / `HGETALL key` (no ETag, no script: the \"straight to Redis\" baseline); ")
	p("**floor** = the same client → `test/bench/statefloor`, the least an HTTP server in front of Redis can do (net/http, `HSET`/`HGET` of the raw body: no JSON, no ETag, no script), in its own process like the sidecar: no HTTP state API can beat it here")
	p("; **daprd** = the same client → a real daprd 1.18.2 (`scripts/build-daprd.sh`) with the same component file, when it is built\n")
	p("- the load generator (this process), tandemd and redis-server share the same CPUs\n\n")

	p("## Targets (issue 3)\n\n| figure | Tandem | target | Dapr 1.18 | met |\n|---|---|---|---|---|\n")
	find := func(op, path string) (pathRun, bool) {
		for _, r := range runs {
			if r.Op == op && r.Path == path {
				return r, true
			}
		}
		return pathRun{}, false
	}
	for _, op := range []string{"save", "get"} {
		dapr := map[string]string{"save": "0.05×", "get": "0.12×"}[op]
		s, ok := find(op, "sidecar")
		if f, okf := find(op, "floor"); okf {
			if d, okd := find(op, "plain"); okd && d.Stats.Rate() > 0 {
				v := f.Stats.Rate() / d.Stats.Rate()
				p("| (floor) %s ops/s through a bare HTTP-to-Redis server ÷ direct (plain) | %.2f× (%.0f / %.0f) | – | – | – |\n", op, v, f.Stats.Rate(), d.Stats.Rate())
			}
		}
		for _, base := range []string{"plain", "component"} {
			d, okd := find(op, base)
			if !ok || !okd || d.Stats.Rate() == 0 {
				continue
			}
			v := s.Stats.Rate() / d.Stats.Rate()
			met := "yes"
			if v < 0.5 {
				met = "**no**"
			}
			p("| %s ops/s through the sidecar ÷ direct (%s) | %.2f× (%.0f / %.0f) | ≥ 0.5× | %s | %s |\n", op, base, v, s.Stats.Rate(), d.Stats.Rate(), dapr, met)
		}
	}

	p("\n## Targets (issue 16: the floor and Dapr in this run)\n\n| figure | Tandem | target | met |\n|---|---|---|---|\n")
	for _, op := range []string{"save", "get"} {
		s, ok := find(op, "sidecar")
		f, okf := find(op, "floor")
		if ok && okf && f.Stats.Rate() > 0 {
			v := s.Stats.Rate() / f.Stats.Rate()
			p("| %s ops/s through the sidecar ÷ the bare HTTP-to-Redis floor | %.2f× (%.0f / %.0f) | ≥ 0.9× | %s |\n", op, v, s.Stats.Rate(), f.Stats.Rate(), yesNo(v >= 0.9))
		}
		d, okd := find(op, "daprd")
		if ok && okd && s.Stats.Ops > 0 && d.Stats.Ops > 0 && s.SidecarCPU > 0 {
			tc := ms(s.SidecarCPU) / float64(s.Stats.Ops)
			dc := ms(d.SidecarCPU) / float64(d.Stats.Ops)
			p("| %s: daprd's CPU per op ÷ tandemd's | %.2f× (%.3f / %.3f ms) | ≥ 5× | %s |\n", op, dc/tc, dc, tc, yesNo(dc/tc >= 5))
			p("| %s: ops/s, tandemd ÷ daprd | %.2f× (%.0f / %.0f) | – | – |\n", op, s.Stats.Rate()/d.Stats.Rate(), s.Stats.Rate(), d.Stats.Rate())
		}
	}

	p("\n## Runs\n\n| op | path | ops/s | ops | errors | p50 ms | p90 ms | p99 ms | max ms | sidecar CPU ms / 1000 ops | redis-server CPU ms / 1000 ops | client CPU ms / 1000 ops |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		sc := "–"
		if r.Path == "sidecar" || r.Path == "floor" || r.Path == "daprd" {
			sc = r.perK(r.SidecarCPU)
		}
		s := r.Stats
		p("| %s | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n",
			r.Op, r.Path, s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), sc, r.perK(r.PeerCPU), r.perK(r.ClientCPU))
	}
	p("\n## Sidecar memory\n\n| idle VmRSS | idle RssAnon (private) | max sampled VmRSS (all runs) | max sampled RssAnon | VmHWM (after all runs) |\n|---|---|---|---|---|\n| %s | %s | %s | %s | %s |\n",
		mib(e.idle), mib(e.idleAnon), mib(e.peak), mib(e.peakAnon), mib(e.hwm))
	return b.String()
}
