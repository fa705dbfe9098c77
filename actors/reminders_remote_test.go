package actors

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/invoke/transport"
)

const wfType = "dapr.internal.default.app.workflow"

// fakeOwner is another host's internal server: it records the reminders
// and actor calls it gets; CallActorReminder is Unimplemented unless
// reminders is set (an earlier Tandem).
type fakeOwner struct {
	internalsv1.UnimplementedServiceInvocationServer
	reminders bool
	mu        sync.Mutex
	got       []*internalsv1.Reminder
	callers   []string // the dapr-caller-app-id of each reminder
	calls     []*internalsv1.InternalInvokeRequest
}

func (f *fakeOwner) CallActorReminder(ctx context.Context, in *internalsv1.Reminder) (*emptypb.Empty, error) {
	if !f.reminders {
		return nil, status.Error(codes.Unimplemented, "no")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, in)
	md, _ := metadata.FromIncomingContext(ctx)
	f.callers = append(f.callers, strings.Join(md.Get(callerAppHeader), ","))
	return &emptypb.Empty{}, nil
}

func (f *fakeOwner) CallActor(_ context.Context, in *internalsv1.InternalInvokeRequest) (*internalsv1.InternalInvokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	return &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 200}, Message: &commonv1.InvokeResponse{}}, nil
}

func serveOwner(t *testing.T, f *fakeOwner) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	internalsv1.RegisterServiceInvocationServer(g, f)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

func remindCall(actorType string, data *anypb.Any) *internalsv1.InternalInvokeRequest {
	return &internalsv1.InternalInvokeRequest{
		Ver: internalsv1.APIVersion_V1, Actor: &internalsv1.Actor{ActorType: actorType, ActorId: "i"},
		Message: &commonv1.InvokeRequest{Method: "remind/timer-1", Data: internalReminderMessage(data),
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT}},
	}
}

// TestCallRemoteReminder: an internal actor's reminder reaches its owner
// as daprd's CallActorReminder, data and all; an owner that does not
// serve that gets the call through CallActor.
func TestCallRemoteReminder(t *testing.T) {
	data, _ := anypb.New(durationpb.New(7))
	for _, serves := range []bool{true, false} {
		owner := &fakeOwner{reminders: serves}
		addr := serveOwner(t, owner)
		pool := transport.NewPool(transport.Options{})
		t.Cleanup(func() { _ = pool.Close() })
		r := &Runtime{cfg: Config{AppID: "app", Pool: pool}}
		if _, err := r.callRemoteReminder(t.Context(), addr, remindCall(wfType, data)); err != nil {
			t.Fatalf("serves CallActorReminder %v: %v", serves, err)
		}
		owner.mu.Lock()
		if serves {
			if len(owner.got) != 1 || owner.got[0].GetName() != "timer-1" || owner.got[0].GetActorType() != wfType || owner.got[0].GetActorId() != "i" || !proto.Equal(owner.got[0].GetData(), data) || len(owner.calls) != 0 {
				t.Errorf("owner got reminders %v and calls %v; want the reminder with its data", owner.got, owner.calls)
			} else if owner.callers[0] != "app" {
				t.Errorf("owner saw caller %q, want app", owner.callers[0])
			}
		} else if len(owner.calls) != 1 || owner.calls[0].GetMessage().GetMethod() != "remind/timer-1" || !proto.Equal(owner.calls[0].GetMessage().GetData(), data) {
			t.Errorf("owner without CallActorReminder got calls %v; want the remind call", owner.calls)
		}
		owner.mu.Unlock()
	}
}

// recordingInternal records the calls of an internal actor type.
type recordingInternal struct {
	mu      sync.Mutex
	calls   []string
	data    [][]byte
	callers []string
}

func (a *recordingInternal) Invoke(ctx context.Context, _, method string, data []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, method)
	a.data = append(a.data, data)
	app, _ := CallerApp(ctx)
	a.callers = append(a.callers, app)
	return nil, nil
}

func (a *recordingInternal) Deactivate(string) {}

// TestCallActorReminderServed: a reminder another host sends by
// CallActorReminder runs on the internal actor this host owns, with the
// reminder's data as stored; one of an actor owned elsewhere is refused
// as moved.
func TestCallActorReminderServed(t *testing.T) {
	const self = "127.0.0.1:5000" // runOnFakePlacement's host
	r, _, st, ctx := runOnFakePlacement(t, nil, 0)
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	wf := &recordingInternal{}
	r.HostInternal(map[string]Internal{wfType: wf})
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	table := func(host string) *placementv1.PlacementTables {
		return &placementv1.PlacementTables{ReplicationFactor: 100, Entries: map[string]*placementv1.PlacementTable{
			wfType: {LoadMap: map[string]*placementv1.Host{host: {Name: host, Id: "app"}}}}}
	}
	placementRound(t, st, "lock", 1, nil)
	placementRound(t, st, "update", 1, table(self))
	placementRound(t, st, "unlock", 1, nil)

	data, _ := anypb.New(durationpb.New(7))
	// A plaintext caller names itself in the call's metadata.
	in := metadata.NewIncomingContext(ctx, metadata.Pairs(callerAppHeader, "app"))
	if err := r.CallActorReminder(in, &internalsv1.Reminder{ActorType: wfType, ActorId: "i", Name: "timer-1", Data: data}); err != nil {
		t.Fatal(err)
	}
	wf.mu.Lock()
	got := new(anypb.Any)
	if len(wf.calls) != 1 || wf.calls[0] != "remind/timer-1" || proto.Unmarshal(wf.data[0], got) != nil || !proto.Equal(got, data) || wf.callers[0] != "app" {
		t.Errorf("the workflow actor got %v with %v from %v; want remind/timer-1 with the reminder's data from app", wf.calls, got, wf.callers)
	}
	wf.mu.Unlock()

	placementRound(t, st, "lock", 2, nil)
	placementRound(t, st, "update", 2, table("10.9.9.9:5000"))
	placementRound(t, st, "unlock", 2, nil)
	err := r.CallActorReminder(ctx, &internalsv1.Reminder{ActorType: wfType, ActorId: "i", Name: "timer-1", Data: data})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a reminder of an actor owned elsewhere: %v, want FailedPrecondition (moved)", err)
	}
}
