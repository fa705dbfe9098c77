package signing

import (
	"strings"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestAttestationVerifies(t *testing.T) {
	ca := newCA(t)
	s := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/worker"), root: ca.root})
	for _, r := range []Result{
		{ParentID: "p", TaskID: 3, Activity: "say", Input: wrapperspb.String("hello"), Output: wrapperspb.String("hello!")},
		{ParentID: "p", TaskID: 3, Activity: "say", Failed: true, Failure: &protos.TaskFailureDetails{ErrorType: "E", ErrorMessage: "boom",
			InnerFailure: &protos.TaskFailureDetails{ErrorMessage: "inner"}}},
		{Child: true, ParentID: "p", TaskID: 1, Input: wrapperspb.String("in")},
		{Child: true, ParentID: "p", TaskID: 1, Failed: true, Failure: &protos.TaskFailureDetails{ErrorMessage: "x"}},
	} {
		a, err := s.Attest(r)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := s.VerifyAttestation(r, a, false)
		if err != nil {
			t.Fatalf("VerifyAttestation(%+v): %v", r, err)
		}
		if string(digest) != string(Digest(a.Chain)) {
			t.Fatal("the returned digest is not the chain's")
		}
	}
}

func TestAttestationTamperingIsDetected(t *testing.T) {
	ca := newCA(t)
	s := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/worker"), root: ca.root})
	other := newCA(t)
	foreign := New(&fakeIdentity{svid: other.svid(t, "/ns/default/worker"), root: other.root})
	r := Result{ParentID: "p", TaskID: 3, Activity: "say", Input: wrapperspb.String("hello"), Output: wrapperspb.String("hello!")}
	a, err := s.Attest(r)
	if err != nil {
		t.Fatal(err)
	}
	fa, err := foreign.Attest(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want Result
		att  Attestation
		at   time.Time
		err  string
	}{
		{"output changed", Result{ParentID: "p", TaskID: 3, Activity: "say", Input: r.Input, Output: wrapperspb.String("forged")}, *a, time.Now(), "ioDigest mismatch"},
		{"input changed", Result{ParentID: "p", TaskID: 3, Activity: "say", Input: wrapperspb.String("x"), Output: r.Output}, *a, time.Now(), "ioDigest mismatch"},
		{"other task", Result{ParentID: "p", TaskID: 4, Activity: "say", Input: r.Input, Output: r.Output}, *a, time.Now(), "task scheduled ID mismatch"},
		{"other parent", Result{ParentID: "q", TaskID: 3, Activity: "say", Input: r.Input, Output: r.Output}, *a, time.Now(), "parent instance ID mismatch"},
		{"other activity", Result{ParentID: "p", TaskID: 3, Activity: "shout", Input: r.Input, Output: r.Output}, *a, time.Now(), "activity name mismatch"},
		{"completion claimed as failure", Result{ParentID: "p", TaskID: 3, Activity: "say", Input: r.Input, Failed: true}, *a, time.Now(), "terminal status"},
		{"signature changed", r, Attestation{Payload: a.Payload, Signature: append([]byte{}, fa.Signature...), Chain: a.Chain}, time.Now(), "signature verification failed"},
		{"chain swapped", r, Attestation{Payload: a.Payload, Signature: a.Signature, Chain: fa.Chain}, time.Now(), "digest mismatch"},
		{"untrusted signer", r, *fa, time.Now(), "chain-of-trust"},
		{"expired signer", r, *a, time.Now().Add(48 * time.Hour), "not valid"},
		{"no chain", r, Attestation{Payload: a.Payload, Signature: a.Signature}, time.Now(), "signer cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.verifyAttestation(tc.want, &tc.att, tc.at, false)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("verify = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}
