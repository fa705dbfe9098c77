package workflow

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"maps"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/workflow/signing"
)

// testIdentity is an SVID of spiffe://public/ns/default/<app> issued by an
// intermediate of a fresh root, which is the trust anchor.
type testIdentity struct {
	svid *x509svid.SVID
	root *x509.Certificate
}

func newTestIdentity(t *testing.T, app string) *testIdentity {
	t.Helper()
	return newTestAuthority(t).identity(t, app)
}

// testAuthority is a root and its intermediate, which issues the
// identities of apps that trust one another.
type testAuthority struct {
	root, mid *x509.Certificate
	midKey    crypto.Signer
	serial    int64
}

func mkCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func newTestAuthority(t *testing.T) *testAuthority {
	t.Helper()
	nb, na := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := mkCert(t, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: nb, NotAfter: na}, nil, &rk.PublicKey, rk)
	mk2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mid := mkCert(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mid"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: nb, NotAfter: na}, root, &mk2.PublicKey, rk)
	return &testAuthority{root: root, mid: mid, midKey: mk2, serial: 2}
}

// identity issues the SVID of app in namespace default.
func (a *testAuthority) identity(t *testing.T, app string) *testIdentity {
	t.Helper()
	nb, na := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	id := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("public"), "/ns/default/"+app)
	lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a.serial++
	leaf := mkCert(t, &x509.Certificate{SerialNumber: big.NewInt(a.serial), URIs: []*url.URL{id.URL()}, NotBefore: nb, NotAfter: na}, a.mid, &lk.PublicKey, a.midKey)
	return &testIdentity{svid: &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{leaf, a.mid}, PrivateKey: lk}, root: a.root}
}

func (i *testIdentity) GetX509SVID() (*x509svid.SVID, error) { return i.svid, nil }
func (i *testIdentity) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.FromX509Authorities(td, []*x509.Certificate{i.root}), nil
}

func signingEngine(h *memHost, s *signing.Signer) *Engine {
	return New(Config{AppID: "app", Namespace: "default", Actors: h, Signer: s})
}

func taskEvent(id int32) *protos.HistoryEvent {
	return ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: "a"}}}, id)
}

// signedInstance stores instance i with a history saved in two turns.
func signedInstance(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	inst := &instance{id: "i", history: []*protos.HistoryEvent{wfStarted(), started("w")}}
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	inst.history = append(inst.history, taskEvent(0), taskEvent(1))
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
}

func TestSignedHistoryRoundTrip(t *testing.T) {
	ctx := context.Background()
	h := newMemHost()
	e := signingEngine(h, signing.New(newTestIdentity(t, "app")))
	signedInstance(t, e)
	for _, k := range []string{"signature-000000", "signature-000001", "sigcert-000000"} {
		if _, ok := h.state["i||"+k]; !ok {
			t.Fatalf("%s not stored; keys %v", k, maps.Keys(h.state))
		}
	}
	if _, ok := h.state["i||sigcert-000001"]; ok {
		t.Fatal("the same chain was stored twice")
	}
	inst, err := e.load(ctx, "i")
	if err != nil {
		t.Fatalf("load of an untouched signed history: %v", err)
	}
	if len(inst.history) != 4 || len(inst.sig.rawSigs) != 2 {
		t.Fatalf("loaded %d events and %d signatures, want 4 and 2", len(inst.history), len(inst.sig.rawSigs))
	}
	// A third turn links to the loaded chain.
	inst.history = append(inst.history, taskEvent(2))
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if _, err := e.load(ctx, "i"); err != nil {
		t.Fatalf("load after a turn on a loaded instance: %v", err)
	}
	// Purge deletes the signing keys too.
	if err := e.purge(ctx, inst, false); err != nil {
		t.Fatal(err)
	}
	if len(h.state) != 0 {
		t.Fatalf("purge left %v", maps.Keys(h.state))
	}
}

func TestTamperedHistoryFailsTheInstance(t *testing.T) {
	ctx := context.Background()
	h := newMemHost()
	e := signingEngine(h, signing.New(newTestIdentity(t, "app")))
	signedInstance(t, e)

	// An event changed in the store, as the conformance case does.
	stored := new(protos.HistoryEvent)
	if err := unmarshal(h.state["i||history-000002"], stored); err != nil {
		t.Fatal(err)
	}
	stored.EventId += 9999
	h.state["i||history-000002"] = mustMarshal(stored)

	_, err := e.loadDirect(ctx, "i")
	var te *TamperedError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "signature verification failed") {
		t.Fatalf("read of a tampered history = %v, want a TamperedError saying signature verification failed", err)
	}
	// The instance's actor ends it as FAILED.
	inst, err := e.instance(ctx, "i")
	if err != nil {
		t.Fatalf("instance: %v", err)
	}
	st := inst.state()
	if st.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED || st.GetFailureDetails().GetErrorType() != ErrorTypeHistoryTampered ||
		!strings.Contains(st.GetFailureDetails().GetErrorMessage(), "signature verification failed") {
		t.Fatalf("state after tampering: %v %v", st.GetWorkflowStatus(), st.GetFailureDetails())
	}
	if len(h.deleted) == 0 {
		t.Error("the tampered instance's reminders were not deleted")
	}
	// Reads now see the failed instance, and it can be purged.
	again, err := e.loadDirect(ctx, "i")
	if err != nil || again.state().GetFailureDetails().GetErrorType() != ErrorTypeHistoryTampered {
		t.Fatalf("read after the marker: %v", err)
	}
	if err := e.purge(ctx, again, false); err != nil || len(h.state) != 0 {
		t.Fatalf("purge of the failed instance: %v, left %v", err, maps.Keys(h.state))
	}
}

func TestTamperedSigningState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(state map[string][]byte)
	}{
		{"signature deleted", func(s map[string][]byte) { delete(s, "i||signature-000001") }},
		{"signature replaced", func(s map[string][]byte) { s["i||signature-000001"] = s["i||signature-000000"] }},
		{"event deleted with metadata", func(s map[string][]byte) {
			md := new(protos.BackendWorkflowStateMetadata)
			_ = unmarshal(s["i||metadata"], md)
			md.HistoryLength--
			s["i||metadata"] = mustMarshal(md)
		}},
		{"signatures stripped from metadata", func(s map[string][]byte) {
			md := new(protos.BackendWorkflowStateMetadata)
			_ = unmarshal(s["i||metadata"], md)
			md.SignatureLength = 1
			s["i||metadata"] = mustMarshal(md)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newMemHost()
			e := signingEngine(h, signing.New(newTestIdentity(t, "app")))
			signedInstance(t, e)
			tc.mutate(h.state)
			_, err := e.load(context.Background(), "i")
			var te *TamperedError
			if !errors.As(err, &te) {
				t.Fatalf("load = %v, want a TamperedError", err)
			}
		})
	}
}

func TestSigningIsOneWay(t *testing.T) {
	ctx := context.Background()
	id := newTestIdentity(t, "app")
	// Signed history on a host that does not sign.
	h := newMemHost()
	signedInstance(t, signingEngine(h, signing.New(id)))
	_, err := signingEngine(h, nil).load(ctx, "i")
	var te *TamperedError
	if err == nil || errors.As(err, &te) || !strings.Contains(err.Error(), "no signer is configured") {
		t.Fatalf("signed history without a signer: %v", err)
	}
	// Unsigned history on a host that signs.
	h = newMemHost()
	signedInstance(t, signingEngine(h, nil))
	if _, ok := h.state["i||signature-000000"]; ok {
		t.Fatal("a host that does not sign stored a signature")
	}
	_, err = signingEngine(h, signing.New(id)).load(ctx, "i")
	if err == nil || errors.As(err, &te) || !strings.Contains(err.Error(), "unsigned history events") {
		t.Fatalf("unsigned history with a signer: %v", err)
	}
	// Another app's certificate does not sign this app's history.
	h = newMemHost()
	signedInstance(t, New(Config{AppID: "app", Actors: h, Signer: signing.New(newTestIdentity(t, "other"))}))
	if _, err = signingEngine(h, signing.New(id)).load(ctx, "i"); !errors.As(err, &te) {
		t.Fatalf("history signed by another app: %v", err)
	}
}

func TestRewrittenHistoryIsSignedAgain(t *testing.T) {
	ctx := context.Background()
	h := newMemHost()
	e := signingEngine(h, signing.New(newTestIdentity(t, "app")))
	signedInstance(t, e)
	inst, err := e.load(ctx, "i")
	if err != nil {
		t.Fatal(err)
	}
	// As continue-as-new: the history is replaced.
	inst.history, inst.historyRewritten = []*protos.HistoryEvent{wfStarted()}, true
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.state["i||signature-000001"]; ok {
		t.Fatal("the old chain's second signature is left")
	}
	if _, err := e.load(ctx, "i"); err != nil {
		t.Fatalf("load of the rewritten history: %v", err)
	}
}

func TestResultAttestation(t *testing.T) {
	ctx := context.Background()
	id := newTestIdentity(t, "app")
	e := signingEngine(newMemHost(), signing.New(id))
	sched := ev(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: "say", Input: wrap("hi")}}}, 0)
	result := func(out string) *protos.HistoryEvent {
		return stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: 0, Result: wrap(out)}}})
	}
	newInst := func() *instance {
		return &instance{id: "i", exists: true, history: []*protos.HistoryEvent{wfStarted(), started("w"), sched}}
	}

	// The sidecar that ran the activity attests; the parent verifies.
	worker := signingEngine(newMemHost(), signing.New(id)) // same trust anchors as the parent
	good := result("hi!")
	if err := worker.attest(good, "i", "say", wrap("hi")); err != nil {
		t.Fatal(err)
	}
	inst := newInst()
	if err := e.checkResult(inst, good); err != nil {
		t.Fatalf("checkResult of an attested result: %v", err)
	}
	if good.GetTaskCompleted().GetSignerCertificate() != nil || good.GetTaskCompleted().GetAttestation() == nil {
		t.Fatal("the chain is not stripped or the attestation is not kept")
	}
	if len(inst.sig.extCerts) != 1 {
		t.Fatalf("%d external certificates, want 1", len(inst.sig.extCerts))
	}
	again := result("hi!")
	_ = worker.attest(again, "i", "say", wrap("hi"))
	if err := e.checkResult(inst, again); err != nil || len(inst.sig.extCerts) != 1 {
		t.Fatalf("a second result of the same signer: %v, %d certificates", err, len(inst.sig.extCerts))
	}

	// A changed result, or none, ends the instance as tampered with.
	forged := result("hi!")
	_ = worker.attest(forged, "i", "say", wrap("hi"))
	forged.GetTaskCompleted().Result = wrap("forged")
	for name, ev := range map[string]*protos.HistoryEvent{"forged": forged, "unattested": result("hi!")} {
		inst := newInst()
		err := e.checkResult(inst, ev)
		if err == nil {
			t.Fatalf("%s result accepted", name)
		}
		if err := e.failTampered(ctx, inst, err); err != nil {
			t.Fatal(err)
		}
		if st := inst.state(); st.GetFailureDetails().GetErrorType() != ErrorTypeHistoryTampered {
			t.Fatalf("%s result: instance %v", name, st.GetWorkflowStatus())
		}
	}
	// Without signing, results are taken as they come.
	plain := signingEngine(newMemHost(), nil)
	if err := plain.checkResult(newInst(), result("x")); err != nil {
		t.Fatalf("no signer: %v", err)
	}
}

func TestInjectedInboxResultFailsTheInstance(t *testing.T) {
	ctx := context.Background()
	h := newMemHost()
	e := signingEngine(h, signing.New(newTestIdentity(t, "app")))
	signedInstance(t, e) // tasks 0 and 1 scheduled
	inst, err := e.load(ctx, "i")
	if err != nil {
		t.Fatal(err)
	}
	ok := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: 1}}})
	inst.inbox = []*protos.HistoryEvent{ok}
	if err := e.checkInbox(inst); err != nil {
		t.Fatalf("a result for a scheduled task: %v", err)
	}
	// A result for a task never scheduled, written into the store.
	injected := stamp(&protos.HistoryEvent{EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: 9999}}})
	h.state["i||inbox-000000"] = mustMarshal(injected)
	md := new(protos.BackendWorkflowStateMetadata)
	_ = unmarshal(h.state["i||metadata"], md)
	md.InboxLength = 1
	h.state["i||metadata"] = mustMarshal(md)
	got, err := e.instance(ctx, "i")
	if err != nil {
		t.Fatal(err)
	}
	fd := got.state().GetFailureDetails()
	if fd.GetErrorType() != ErrorTypeHistoryTampered || !strings.Contains(fd.GetErrorMessage(), "state store tampering") {
		t.Fatalf("instance with an injected result: %v", fd)
	}
}
