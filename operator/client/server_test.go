package client

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
)

// testCA issues SVIDs from a fresh CA.
type testCA struct {
	t  *testing.T
	ca *ca.CA
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	b, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t: t, ca: c}
}

// source returns an identity.Source holding an SVID for id.
func (c *testCA) source(id string) *identity.Source {
	c.t.Helper()
	cert, err := c.ca.IssueTLS(spiffeid.RequireFromString(id), time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	chain := []*x509.Certificate{cert.Leaf}
	for _, der := range cert.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			c.t.Fatal(err)
		}
		chain = append(chain, ic)
	}
	src := identity.NewSource()
	src.SetTrustAnchors(c.ca.TrustAnchors())
	src.SetSVID(&x509svid.SVID{ID: spiffeid.RequireFromString(id), Certificates: chain, PrivateKey: cert.PrivateKey.(crypto.Signer)})
	return src
}

// fakeOperator is a small real operator: it serves components and
// subscriptions from memory, streams the changes it is told about, and
// answers GetConfiguration. It checks, as Dapr's operator does, that the
// caller's SPIFFE ID is in the namespace it asks for.
type fakeOperator struct {
	operatorv1.UnimplementedOperatorServer

	mu      sync.Mutex
	comps   [][]byte
	config  []byte
	streams []chan *operatorv1.ComponentUpdateEvent
	opened  chan struct{} // gets a value whenever a component stream opens
}

func newFakeOperator() *fakeOperator { return &fakeOperator{opened: make(chan struct{}, 16)} }

func authorize(ctx context.Context, ns string) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return status.Error(codes.PermissionDenied, "not TLS")
	}
	id, err := identity.PeerID(ti.State)
	if err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	app, err := identity.ParseApp(id)
	if err != nil || app.Namespace != ns {
		return status.Errorf(codes.PermissionDenied, "identity does not match requested namespace exp=%s got=%v", ns, app.Namespace)
	}
	return nil
}

func (f *fakeOperator) ListComponents(ctx context.Context, req *operatorv1.ListComponentsRequest) (*operatorv1.ListComponentResponse, error) {
	if err := authorize(ctx, req.GetNamespace()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &operatorv1.ListComponentResponse{Components: f.comps}, nil
}

func (f *fakeOperator) GetConfiguration(ctx context.Context, req *operatorv1.GetConfigurationRequest) (*operatorv1.GetConfigurationResponse, error) {
	if err := authorize(ctx, req.GetNamespace()); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.GetName() != "appconfig" {
		return &operatorv1.GetConfigurationResponse{}, nil
	}
	return &operatorv1.GetConfigurationResponse{Configuration: f.config}, nil
}

func (f *fakeOperator) ComponentUpdate(req *operatorv1.ComponentUpdateRequest, srv operatorv1.Operator_ComponentUpdateServer) error {
	if err := authorize(srv.Context(), req.GetNamespace()); err != nil {
		return err
	}
	ch := make(chan *operatorv1.ComponentUpdateEvent)
	f.mu.Lock()
	f.streams = append(f.streams, ch)
	f.mu.Unlock()
	f.opened <- struct{}{}
	for {
		select {
		case <-srv.Context().Done():
			return nil
		case ev := <-ch:
			if err := srv.Send(ev); err != nil {
				return err
			}
		}
	}
}

// setComponents replaces the listed components.
func (f *fakeOperator) setComponents(comps ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comps = nil
	for _, c := range comps {
		b, _ := json.Marshal(c)
		f.comps = append(f.comps, b)
	}
}

// send streams one component event to every open stream.
func (f *fakeOperator) send(ctx context.Context, typ operatorv1.ResourceEventType, comp any) error {
	b, _ := json.Marshal(comp)
	f.mu.Lock()
	streams := f.streams
	f.mu.Unlock()
	for _, ch := range streams {
		select {
		case ch <- &operatorv1.ComponentUpdateEvent{Component: b, Type: typ}:
		case <-ctx.Done():
			return errors.New("no stream took the event")
		}
	}
	return nil
}

// serve serves op with mTLS on addr ("127.0.0.1:0" for any port) as the
// SPIFFE ID id, and returns the address and a stop function.
func (c *testCA) serve(addr, id string, op operatorv1.OperatorServer) (string, func()) {
	c.t.Helper()
	src := c.source(id)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.ServerTLS(src, tlsconfig.AuthorizeAny()))))
	operatorv1.RegisterOperatorServer(gs, op)
	var lis net.Listener
	var err error
	for range 50 { // the port of a stopped server may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		gs.Stop()
		<-done
	}
}
