package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// turnLedger records every turn of every actor on every host of a test as
// an interval (actor, host, start, end) and counts, as they happen, turns
// of one actor that overlap on two hosts.
type turnLedger struct {
	mu       sync.Mutex
	inTurn   map[string]string // actor ID -> host in a turn now
	turns    []turnRecord
	overlaps []string // descriptions of the overlaps seen
}

type turnRecord struct {
	id, host   string
	start, end time.Time
}

func (l *turnLedger) enter(id, host string) (leave func()) {
	l.mu.Lock()
	if other, ok := l.inTurn[id]; ok {
		l.overlaps = append(l.overlaps, fmt.Sprintf("%s in a turn on %s and %s at %s", id, other, host, time.Now().Format(time.StampMicro)))
	}
	l.inTurn[id] = host
	l.mu.Unlock()
	start := time.Now()
	return func() {
		l.mu.Lock()
		if l.inTurn[id] == host {
			delete(l.inTurn, id)
		}
		l.turns = append(l.turns, turnRecord{id: id, host: host, start: start, end: time.Now()})
		l.mu.Unlock()
	}
}

// crossHostOverlaps checks the recorded intervals after the fact: two
// turns of one actor on different hosts whose intervals intersect.
func (l *turnLedger) crossHostOverlaps() []string {
	l.mu.Lock()
	byID := map[string][]turnRecord{}
	for _, r := range l.turns {
		byID[r.id] = append(byID[r.id], r)
	}
	l.mu.Unlock()
	var out []string
	for id, rs := range byID {
		slices.SortFunc(rs, func(a, b turnRecord) int { return a.start.Compare(b.start) })
		// Latest end so far, and on which host; a turn that starts before
		// it on another host overlaps.
		var maxEnd time.Time
		var maxHost string
		for _, r := range rs {
			if r.start.Before(maxEnd) && r.host != maxHost {
				out = append(out, fmt.Sprintf("%s: turn on %s from %s overlaps one on %s until %s", id, r.host,
					r.start.Format(time.StampMicro), maxHost, maxEnd.Format(time.StampMicro)))
			}
			if r.end.After(maxEnd) {
				maxEnd, maxHost = r.end, r.host
			}
		}
	}
	return out
}

// hostsOf returns the hosts that ran turns of id since t.
func (l *turnLedger) hostsOf(id string, since time.Time) map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for _, r := range l.turns {
		if r.id == id && !r.start.Before(since) {
			out[r.host] = true
		}
	}
	return out
}

// ledgerApp hosts actor type "ledger". Its "add" keeps the count in the
// actor's state (read, add one, write back through its sidecar's actor
// state API) and returns it: an actor running on two hosts at once loses
// updates and hands out one count twice. Reminders are recorded with the
// host that received them.
type ledgerApp struct {
	host    string
	sidecar atomic.Value // string: its sidecar's HTTP URL
	turns   *turnLedger
	rem     *reminderLog
	srv     *http.Server
	client  *http.Client
	served  atomic.Int64
}

// reminderLog records the reminders received on every host.
type reminderLog struct {
	mu    sync.Mutex
	fired []reminderFiring
}

type reminderFiring struct {
	id, name, host string
	at             time.Time
}

func (l *reminderLog) add(f reminderFiring) {
	l.mu.Lock()
	l.fired = append(l.fired, f)
	l.mu.Unlock()
}

func (l *reminderLog) snapshot() []reminderFiring {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.fired)
}

func startLedgerApp(t *testing.T, host string, turns *turnLedger, rem *reminderLog) (*ledgerApp, int) {
	t.Helper()
	app := &ledgerApp{host: host, turns: turns, rem: rem, client: &http.Client{Timeout: 10 * time.Second}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app.srv = &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = app.srv.Serve(ln) }()
	t.Cleanup(func() { _ = app.srv.Close() })
	return app, ln.Addr().(*net.TCPAddr).Port
}

func (a *ledgerApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/dapr/config":
		_, _ = io.WriteString(w, `{"entities":["ledger"],"actorIdleTimeout":"1h","drainOngoingCallTimeout":"5s"}`)
	case r.Method == http.MethodDelete && len(parts) == 3 && parts[0] == "actors":
	case r.Method == http.MethodPut && len(parts) >= 5 && parts[0] == "actors" && parts[3] == "method":
		id, method := parts[2], strings.Join(parts[4:], "/")
		if name, ok := strings.CutPrefix(method, "remind/"); ok {
			defer a.turns.enter(id, a.host)()
			a.rem.add(reminderFiring{id: id, name: name, host: a.host, at: time.Now()})
			return
		}
		if method != "add" {
			http.NotFound(w, r)
			return
		}
		a.served.Add(1)
		defer a.turns.enter(id, a.host)()
		n, err := a.add(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprintf(w, `{"host":%q,"count":%d}`, a.host, n)
	default:
		http.NotFound(w, r)
	}
}

// add reads the actor's count, adds one and saves it.
func (a *ledgerApp) add(id string) (int, error) {
	base := a.sidecar.Load().(string) + "/v1.0/actors/ledger/" + id + "/state"
	resp, err := a.client.Get(base + "/count")
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	n := 0
	switch resp.StatusCode {
	case http.StatusOK:
		if n, err = strconv.Atoi(string(b)); err != nil {
			return 0, fmt.Errorf("count %q: %v", b, err)
		}
	case http.StatusNoContent:
	default:
		return 0, fmt.Errorf("get count: %d %s", resp.StatusCode, b)
	}
	n++
	resp, err = a.client.Post(base, "application/json",
		strings.NewReader(fmt.Sprintf(`[{"operation":"upsert","request":{"key":"count","value":%d}}]`, n)))
	if err != nil {
		return 0, err
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("save count: %d %s", resp.StatusCode, b)
	}
	return n, nil
}

// idTally is what the callers learnt about one actor.
type idTally struct {
	acked  []int // counts returned by successful calls
	failed int   // calls whose outcome is unknown
}

// TestActorsRebalance: three tandemd hosts of actor type "ledger" (Tandem's
// placement and sentry, mTLS, actor state and reminders in one sqlite
// file, which is the default sidecar's reminder store: no
// --scheduler-host-address) serve callers that never stop. A fourth host
// joins, then one of the first three is SIGKILLed with its app. Checked:
// no actor ever runs a turn on two hosts at once (live and from the
// recorded intervals); the new host takes actors; after a bounded pause
// every call succeeds again; each actor's count in its state equals its
// acknowledged calls plus at most its failed ones, and no two
// acknowledged calls got the same count (a lost update would); reminders
// of actors that lived on the killed host fire on the other hosts.
func TestActorsRebalance(t *testing.T) {
	const (
		ids         = 64
		callers     = 8
		maxPause    = 10 * time.Second // the bound for calls failing after the kill
		reminderFor = 12               // actors given a reminder on the host to kill
	)
	began := time.Now()
	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	reps := startTandemPlacement(t, 1, "--tls-enabled", "--sentry-address="+sentry.Addr,
		"--trust-anchors-file="+filepath.Join(sentry.CredsDir, "ca.crt"), "--trust-domain="+sentry.TrustDomain)
	place := reps[0].Addr
	res := framework.ActorStore(t, "busyTimeout", "10s")
	turns := &turnLedger{inTurn: map[string]string{}}
	rems := &reminderLog{}
	apps := map[string]*ledgerApp{}
	sidecars := map[string]*framework.Sidecar{}
	startHost := func(name string) {
		app, port := startLedgerApp(t, name, turns, rems)
		s := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "ledgers", AppPort: port, ResourcesDir: res, Sentry: sentry,
			Args: []string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s"}})
		app.sidecar.Store(s.HTTPURL())
		apps[name], sidecars[name] = app, s
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		startHost(h)
	}
	var callerSidecars []*framework.Sidecar
	for i := range 2 {
		callerSidecars = append(callerSidecars, framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: fmt.Sprintf("caller%d", i), Sentry: sentry, Args: []string{"--placement-host-address", place}}))
	}
	for _, s := range append(slices.Collect(maps.Values(sidecars)), callerSidecars...) {
		waitActorsReady(t, s)
	}
	t.Logf("cluster up in %s", time.Since(began).Round(time.Millisecond))

	// The load: callers through the two caller sidecars, each call on a
	// random actor; every outcome is recorded with its time.
	var (
		mu        sync.Mutex
		tally     = map[string]*idTally{}
		failTimes []time.Time
		firstErrs []string
		okCount   atomic.Int64
	)
	for i := range ids {
		tally[fmt.Sprintf("id-%d", i)] = &idTally{}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for c := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("id-%d", (c*7919+i*31)%ids)
				s := callerSidecars[(c+i)%len(callerSidecars)]
				resp, err := client.Post(s.HTTPURL()+"/v1.0/actors/ledger/"+id+"/method/add", "", nil)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				var out struct{ Count int }
				if err == nil && resp.StatusCode == 200 {
					err = json.Unmarshal(body, &out)
				} else if err == nil {
					err = fmt.Errorf("%d %s", resp.StatusCode, body)
				}
				mu.Lock()
				if err != nil {
					tally[id].failed++
					failTimes = append(failTimes, time.Now())
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("%s: %v", id, err))
					}
				} else {
					tally[id].acked = append(tally[id].acked, out.Count)
					okCount.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	failuresSince := func(since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ft := range failTimes {
			if !ft.Before(since) {
				n++
			}
		}
		return n
	}

	time.Sleep(2 * time.Second)
	if okCount.Load() == 0 {
		t.Fatalf("no call succeeded on three hosts: %v", firstErrs)
	}

	// A fourth host joins under load.
	joinAt := time.Now()
	startHost("h4")
	waitActorsReady(t, sidecars["h4"])
	t.Logf("h4 ready %s after it was started", time.Since(joinAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if apps["h4"].served.Load() == 0 {
		t.Errorf("the new host h4 served no call in 2s")
	}

	// Reminders on actors h2 owns: found by calling them, then registered
	// (reminders are created through a sidecar that hosts the type).
	const victim = "h2"
	var victimIDs []string
	for i := 0; len(victimIDs) < reminderFor && i < 1000; i++ {
		id := fmt.Sprintf("rem-%d", i)
		code, body := httpDo(t, http.MethodPost, callerSidecars[0].HTTPURL()+"/v1.0/actors/ledger/"+id+"/method/add", "")
		if code != 200 {
			t.Fatalf("find owner of %s: %d %s", id, code, body)
		}
		if m := hostRe.FindStringSubmatch(body); m != nil && m[1] == victim {
			victimIDs = append(victimIDs, id)
		}
	}
	if len(victimIDs) < reminderFor {
		t.Fatalf("found only %d actors on %s", len(victimIDs), victim)
	}
	for _, id := range victimIDs {
		if code, body := httpDo(t, http.MethodPost, sidecars["h1"].HTTPURL()+"/v1.0/actors/ledger/"+id+"/reminders/tick",
			`{"dueTime":"1s","period":"1s","data":"x"}`); code != 204 {
			t.Fatalf("create reminder on %s: %d %s", id, code, body)
		}
	}
	firedOn := func(id, host string, since time.Time, not bool) bool {
		for _, f := range rems.snapshot() {
			if f.id == id && !f.at.Before(since) && (f.host == host) != not {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, id := range victimIDs {
		for !firedOn(id, victim, joinAt, false) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !firedOn(id, victim, joinAt, false) {
			t.Fatalf("reminder of %s never fired on its owner %s before the kill: %v", id, victim, rems.snapshot())
		}
	}

	// SIGKILL h2's sidecar; its app goes with it.
	killAt := time.Now()
	sidecars[victim].Kill()
	_ = apps[victim].srv.Close()
	t.Logf("%s killed; %d calls succeeded so far", victim, okCount.Load())

	// Calls succeed again within maxPause: afterwards, no failure for 3s.
	var recovered time.Time
	for time.Since(killAt) < maxPause+5*time.Second {
		time.Sleep(250 * time.Millisecond)
		mu.Lock()
		last := killAt
		for _, ft := range failTimes {
			if ft.After(last) {
				last = ft
			}
		}
		mu.Unlock()
		if time.Since(last) >= 3*time.Second && okCount.Load() > 0 {
			recovered = last
			break
		}
	}
	if recovered.IsZero() {
		t.Errorf("calls still failing %s after the kill: %v", time.Since(killAt).Round(time.Millisecond), firstErrs)
	} else if pause := recovered.Sub(killAt); pause > maxPause {
		t.Errorf("calls failed for %s after the kill, more than %s", pause.Round(time.Millisecond), maxPause)
	} else {
		t.Logf("last failed call %s after the kill; %d calls failed after it", pause.Round(time.Millisecond), failuresSince(killAt))
	}

	// Every reminder of the killed host fires on another host.
	deadline = killAt.Add(15 * time.Second)
	var lag []time.Duration
	for _, id := range victimIDs {
		for !firedOn(id, victim, killAt, true) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		first := time.Time{}
		for _, f := range rems.snapshot() {
			if f.id == id && f.host != victim && f.at.After(killAt) && (first.IsZero() || f.at.Before(first)) {
				first = f.at
			}
		}
		if first.IsZero() {
			t.Errorf("reminder of %s (on %s) did not fire on another host within 15s of the kill", id, victim)
			continue
		}
		lag = append(lag, first.Sub(killAt))
	}
	if len(lag) > 0 {
		slices.Sort(lag)
		t.Logf("reminders of %s first fired elsewhere %s to %s after the kill", victim, lag[0].Round(time.Millisecond), lag[len(lag)-1].Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	stopLoad()

	// No actor on two hosts at once.
	turns.mu.Lock()
	live := slices.Clone(turns.overlaps)
	nTurns := len(turns.turns)
	turns.mu.Unlock()
	for _, o := range live {
		t.Errorf("overlapping turns: %s", o)
	}
	for _, o := range turns.crossHostOverlaps() {
		t.Errorf("overlapping turns (recorded intervals): %s", o)
	}
	// The killed host's actors moved.
	for _, id := range victimIDs {
		if hs := turns.hostsOf(id, killAt.Add(time.Second)); hs[victim] {
			t.Errorf("%s ran a turn on the killed host after the kill", id)
		}
	}

	// State: each count equals the acknowledged calls plus some of the
	// failed ones, and no count was handed out twice.
	reader := sidecars["h1"]
	totalAcked, totalFailed := 0, 0
	for id, tl := range tally {
		code, body := httpDo(t, http.MethodGet, reader.HTTPURL()+"/v1.0/actors/ledger/"+id+"/state/count", "")
		got := 0
		if code == 200 {
			got, _ = strconv.Atoi(body)
		} else if code != 204 {
			t.Fatalf("read count of %s: %d %s", id, code, body)
		}
		totalAcked += len(tl.acked)
		totalFailed += tl.failed
		if got < len(tl.acked) || got > len(tl.acked)+tl.failed {
			t.Errorf("%s: count %d in state, %d calls acknowledged, %d failed", id, got, len(tl.acked), tl.failed)
		}
		seen := map[int]bool{}
		for _, n := range tl.acked {
			if seen[n] {
				t.Errorf("%s: count %d returned to two acknowledged calls (a lost update)", id, n)
				break
			}
			seen[n] = true
		}
	}
	t.Logf("%d turns; %d calls acknowledged, %d failed (%d while h4 joined, %d after the kill); test took %s",
		nTurns, totalAcked, totalFailed, failuresSince(joinAt)-failuresSince(killAt), failuresSince(killAt), time.Since(began).Round(time.Millisecond))
	if len(firstErrs) > 0 {
		t.Logf("first failures: %q", firstErrs)
	}
}
