package actors

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/invoke"
)

// fakePlacement is a small real placement server whose one stream the
// test drives.
type fakePlacement struct {
	placementv1.UnimplementedPlacementServer
	streams chan placementv1.Placement_ReportDaprStatusServer
	// drop, when a value is sent on it, ends the stream open then (the
	// placement service went away).
	drop chan struct{}
}

func (s *fakePlacement) ReportDaprStatus(st placementv1.Placement_ReportDaprStatusServer) error {
	s.streams <- st
	select {
	case <-st.Context().Done():
		return st.Context().Err()
	case <-s.drop:
		return status.Error(codes.Unavailable, "placement went away")
	}
}

// blockingApp hosts type "counter": its first method call waits for its
// context to end, the others answer at once.
type blockingApp struct {
	config    string
	calls     atomic.Int32
	started   chan struct{} // closed when the first call arrived
	cancelled atomic.Bool
}

func (a *blockingApp) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	ok := func(body string) (*invoke.Response, error) {
		return &invoke.Response{
			Message: &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}, Message: &commonv1.InvokeResponse{}},
			Body:    io.NopCloser(strings.NewReader(body)),
		}, nil
	}
	method := req.Message.GetMessage().GetMethod()
	switch {
	case method == "dapr/config":
		return ok(a.config)
	case strings.Contains(method, "/method/"):
		if a.calls.Add(1) == 1 {
			close(a.started)
			<-ctx.Done()
			a.cancelled.Store(true)
			return nil, ctx.Err()
		}
	}
	return ok("")
}

func placementRound(t *testing.T, st placementv1.Placement_ReportDaprStatusServer, op string, v uint64, tb *placementv1.PlacementTables) {
	t.Helper()
	if err := st.Send(&placementv1.PlacementOrder{Operation: op, Version: v, Tables: tb}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
}

func counterTable(hosts ...string) *placementv1.PlacementTables {
	lm := map[string]*placementv1.Host{}
	for _, h := range hosts {
		lm[h] = &placementv1.Host{Name: h, Id: "app"}
	}
	return &placementv1.PlacementTables{ReplicationFactor: 100, Entries: map[string]*placementv1.PlacementTable{"counter": {LoadMap: lm}}}
}

// TestTableUpdateDrainsCalls: an update that changes the ring of a type
// with a call in flight is acknowledged once the call was given its drain
// timeout and cancelled; the call is then routed again against the new
// table, and the caller gets the second attempt's answer.
func TestTableUpdateDrainsCalls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		wait   time.Duration // the least time the update is held
		max    time.Duration
	}{
		{"drained for the drain timeout", `{"entities":["counter"],"drainOngoingCallTimeout":"1s"}`, time.Second, 5 * time.Second},
		{"clamped to the dissemination timeout", `{"entities":["counter"],"drainOngoingCallTimeout":"1m"}`, 2400 * time.Millisecond, 2900 * time.Millisecond},
		{"cancelled at once without drainRebalancedActors", `{"entities":["counter"],"drainOngoingCallTimeout":"1m","drainRebalancedActors":false}`, 0, 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &blockingApp{config: tc.config, started: make(chan struct{})}
			// Drains of 3s and more are clamped to 2.4s.
			r, _, st, ctx := runOnFakePlacement(t, app, 3*time.Second)
			if _, err := st.Recv(); err != nil { // the report
				t.Fatal(err)
			}
			placementRound(t, st, "lock", 1, nil)
			placementRound(t, st, "update", 1, counterTable("127.0.0.1:5000"))
			placementRound(t, st, "unlock", 1, nil)

			called := callCounter(ctx, r)
			<-app.started

			// Another name for this host: the ring changes, the actor stays.
			placementRound(t, st, "lock", 2, nil)
			start := time.Now()
			placementRound(t, st, "update", 2, counterTable("127.0.0.1:5000", "localhost:5000"))
			held := time.Since(start)
			if held < tc.wait || held > tc.max {
				t.Errorf("update acknowledged after %s, want between %s and %s", held, tc.wait, tc.max)
			}
			if !app.cancelled.Load() {
				t.Error("the call in flight was not cancelled by the update")
			}
			placementRound(t, st, "unlock", 2, nil)
			select {
			case err := <-called:
				if err != nil {
					t.Fatalf("call: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the drained call was not routed again")
			}
			if n := app.calls.Load(); n != 2 {
				t.Errorf("app got %d calls, want 2", n)
			}
		})
	}
}

// TestDrainedCallOfCancelledCaller: a call its caller gave up on is not
// routed again.
func TestDrainedCallOfCancelledCaller(t *testing.T) {
	r := &Runtime{cfg: Config{AppID: "app"}, active: map[string]*actor{}, draining: map[string]int{},
		types: map[string]TypeConfig{"counter": {DrainCallTimeout: time.Second}}}
	app := &blockingApp{started: make(chan struct{})}
	r.cfg.App = app
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.callLocal(ctx, &internalsv1.InternalInvokeRequest{
			Actor:   &internalsv1.Actor{ActorType: "counter", ActorId: "1"},
			Message: &commonv1.InvokeRequest{Method: "m"},
		})
		done <- err
	}()
	<-app.started
	cancel()
	if err := <-done; errors.Is(err, errMoved) || !errors.Is(err, context.Canceled) {
		t.Fatalf("call ended with %v, want the caller's cancellation", err)
	}
}

// serveFakePlacement serves a fakePlacement until the test ends and
// returns it with its address.
func serveFakePlacement(t *testing.T) (*fakePlacement, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fakePlacement{streams: make(chan placementv1.Placement_ReportDaprStatusServer, 1), drop: make(chan struct{})}
	g := grpc.NewServer()
	placementv1.RegisterPlacementServer(g, srv)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return srv, ln.Addr().String()
}

// runOnFakePlacement runs a Runtime of app "app", host 127.0.0.1:5000,
// with app as its app channel (nil: none), on a fake placement with the
// given dissemination timeout (0: the default) until the test ends. It
// returns the runtime, the placement server, its first stream (whose
// first report the caller reads) and the context the runtime runs in.
func runOnFakePlacement(t *testing.T, app invoke.AppChannel, dissemination time.Duration) (*Runtime, *fakePlacement, placementv1.Placement_ReportDaprStatusServer, context.Context) {
	t.Helper()
	srv, addr := serveFakePlacement(t)
	r, err := New(Config{
		AppID: "app", Namespace: "default", App: app,
		Placement: &placement.Config{
			Addresses: []string{addr}, HostName: "127.0.0.1:5000", AppID: "app", Namespace: "default",
			DialOptions:          []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
			DisseminationTimeout: dissemination,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	return r, srv, <-srv.streams, ctx
}

// callCounter calls method m of counter actor 1 through r in the
// background; the channel gets the call's error.
func callCounter(ctx context.Context, r *Runtime) <-chan error {
	called := make(chan error, 1)
	go func() {
		_, err := r.Call(ctx, &internalsv1.InternalInvokeRequest{
			Ver:     internalsv1.APIVersion_V1,
			Actor:   &internalsv1.Actor{ActorType: "counter", ActorId: "1"},
			Message: &commonv1.InvokeRequest{Method: "m", HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT}},
		})
		called <- err
	}()
	return called
}

// TestHostInternalReportsOnce: internal types hosted together reach
// placement in one report (one dissemination round, as daprd's).
func TestHostInternalReportsOnce(t *testing.T) {
	r, _, st, _ := runOnFakePlacement(t, nil, 0)
	if h, err := st.Recv(); err != nil || len(h.GetEntities()) != 0 {
		t.Fatalf("first report %v, %v; want no types", h, err)
	}
	r.HostInternal(map[string]Internal{"w.workflow": nil, "w.activity": nil, "w.retentioner": nil})
	h, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.GetEntities(), ","); got != "w.activity,w.retentioner,w.workflow" {
		t.Fatalf("reported %q, want the three types at once", got)
	}
}

// TestPlacementLossDrainsCalls: when the stream to placement drops, the
// calls in flight get the app's drainOngoingCallTimeout (daprd's drain on
// a closed stream; the per-type override does not apply), then are
// cancelled; every actor is deactivated, the runtime reports placement
// disconnected, and only then does the host reconnect. The cancelled call
// is routed again once the new stream's table comes.
func TestPlacementLossDrainsCalls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		config   string
		min, max time.Duration // bounds of the drop-to-reconnect time
	}{
		// 1s of drain, then 250-500ms of reconnect backoff; the
		// entitiesConfig's 1m is not the one that counts.
		{"drained for the app's timeout", `{"entities":["counter"],"drainOngoingCallTimeout":"1s",
			"entitiesConfig":[{"entities":["counter"],"drainOngoingCallTimeout":"1m"}]}`, time.Second, 4 * time.Second},
		{"cancelled at once without drainRebalancedActors", `{"entities":["counter"],"drainOngoingCallTimeout":"1m","drainRebalancedActors":false}`,
			0, 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &blockingApp{config: tc.config, started: make(chan struct{})}
			r, srv, st, ctx := runOnFakePlacement(t, app, 0)
			if _, err := st.Recv(); err != nil {
				t.Fatal(err)
			}
			placementRound(t, st, "lock", 1, nil)
			placementRound(t, st, "update", 1, counterTable("127.0.0.1:5000"))
			placementRound(t, st, "unlock", 1, nil)

			called := callCounter(ctx, r)
			<-app.started

			start := time.Now()
			srv.drop <- struct{}{}
			var st2 placementv1.Placement_ReportDaprStatusServer
			select {
			case st2 = <-srv.streams:
			case <-time.After(10 * time.Second):
				t.Fatal("the host did not reconnect")
			}
			took := time.Since(start)
			if took < tc.min || took > tc.max {
				t.Errorf("reconnected %s after the drop, want between %s and %s", took, tc.min, tc.max)
			}
			if !app.cancelled.Load() {
				t.Error("the call in flight was not cancelled before the host reconnected")
			}
			s := r.Status()
			if s.GetPlacement() != "placement: disconnected" || s.GetHostReady() {
				t.Errorf("status before the new table: placement %q, host ready %v", s.GetPlacement(), s.GetHostReady())
			}
			for _, c := range s.GetActiveActors() {
				if c.GetCount() != 0 {
					t.Errorf("%d actors of %s still active after the drop", c.GetCount(), c.GetType())
				}
			}
			select {
			case err := <-called:
				t.Fatalf("the call ended before a new table came: %v", err)
			default:
			}

			if _, err := st2.Recv(); err != nil {
				t.Fatal(err)
			}
			placementRound(t, st2, "lock", 2, nil)
			placementRound(t, st2, "update", 2, counterTable("127.0.0.1:5000"))
			placementRound(t, st2, "unlock", 2, nil)
			select {
			case err := <-called:
				if err != nil {
					t.Fatalf("call: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the cancelled call was not routed again")
			}
			if n := app.calls.Load(); n != 2 {
				t.Errorf("app got %d calls, want 2", n)
			}
		})
	}
}

// slowReminders is an internal type whose calls wait for their context or
// for release; outside says whether its reminders skip the turn.
type slowReminders struct {
	outside bool
	started chan string
	release chan struct{}
}

func (s *slowReminders) Invoke(ctx context.Context, _, method string, _ []byte) ([]byte, error) {
	s.started <- method
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.release:
		return nil, nil
	}
}

func (*slowReminders) Deactivate(string)            {}
func (s *slowReminders) RemindersOutsideTurn() bool { return s.outside }

// TestReminderOutsideTurnIsNotDrained: a table update cancels an internal
// type's method call in flight, but not a reminder of a type whose
// reminders run outside the turn (daprd's SkipLock for its activity
// actor), which also does not wait for the actor's turn.
func TestReminderOutsideTurnIsNotDrained(t *testing.T) {
	h := &slowReminders{outside: true, started: make(chan string, 2), release: make(chan struct{})}
	r := &Runtime{cfg: Config{AppID: "app"}, active: map[string]*actor{}, draining: map[string]int{},
		internal: map[string]Internal{"act": h}, types: map[string]TypeConfig{"act": internalTypeConfig}}
	call := func(method string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := r.callLocal(t.Context(), &internalsv1.InternalInvokeRequest{
				Actor:   &internalsv1.Actor{ActorType: "act", ActorId: "1"},
				Message: &commonv1.InvokeRequest{Method: method},
			})
			done <- err
		}()
		return done
	}
	method := call("Execute")
	if m := <-h.started; m != "Execute" {
		t.Fatalf("first call %q", m)
	}
	// The method call holds the turn; the reminder runs beside it.
	reminder := call("remind/run-activity")
	select {
	case m := <-h.started:
		if m != "remind/run-activity" {
			t.Fatalf("second call %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reminder waited for the actor's turn")
	}
	r.calls.drain(map[string]drainPolicy{"act": {}}, r.log)
	select {
	case err := <-method:
		if !errors.Is(err, errMoved) {
			t.Fatalf("drained method call ended with %v, want it routed again", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the method call was not cancelled by the drain")
	}
	select {
	case err := <-reminder:
		t.Fatalf("the reminder ended with the drain: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(h.release)
	if err := <-reminder; err != nil {
		t.Fatalf("reminder: %v", err)
	}
}
