package signing

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

// signedChunk is a chunk of n events of instance inst of app, signed by s.
func signedChunk(t *testing.T, s *Signer, app, inst string, n int) *protos.PropagatedHistoryChunk {
	t.Helper()
	c := &protos.PropagatedHistoryChunk{AppId: app, InstanceId: inst, WorkflowName: "wf-" + inst, RawEvents: rawEvents(t, n)}
	if err := s.SignChunk(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPropagatedHistoryVerifies(t *testing.T) {
	ca := newCA(t)
	app0 := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app0"), root: ca.root})
	app1 := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app1"), root: ca.root})
	leaf := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app2"), root: ca.root})
	ph := &protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{
		signedChunk(t, app0, "app0", "root", 3),
		signedChunk(t, app1, "app1", "middle", 2),
	}}
	if len(ph.Chunks[0].GetRawSignatures()) != 1 || len(ph.Chunks[0].GetSigningCertChains()) != 1 {
		t.Fatalf("chunk carries %d signatures and %d chains, want 1 and 1", len(ph.Chunks[0].GetRawSignatures()), len(ph.Chunks[0].GetSigningCertChains()))
	}
	sig := new(protos.HistorySignature)
	if err := proto.Unmarshal(ph.Chunks[0].GetRawSignatures()[0], sig); err != nil {
		t.Fatal(err)
	}
	if sig.GetStartEventIndex() != 0 || sig.GetEventCount() != 3 || sig.GetPreviousSignatureDigest() != nil {
		t.Fatalf("chunk signature %v, want one batch of the chunk's 3 events", sig)
	}
	chains, err := leaf.VerifyPropagated(ph, "default")
	if err != nil {
		t.Fatalf("VerifyPropagated: %v", err)
	}
	if len(chains) != 2 || !bytes.Equal(chains[0], ph.Chunks[0].GetSigningCertChains()[0]) || !bytes.Equal(chains[1], ph.Chunks[1].GetSigningCertChains()[0]) {
		t.Fatalf("verified chains %d, want app0's then app1's", len(chains))
	}
	if !Signed(ph) || Signed(&protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{{AppId: "a", RawEvents: rawEvents(t, 1)}}}) {
		t.Error("Signed is wrong")
	}
	if _, err := leaf.VerifyPropagated(ph, ""); err == nil {
		t.Error("verified without a namespace")
	}
}

func TestPropagatedHistoryTampering(t *testing.T) {
	ca := newCA(t)
	app0 := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app0"), root: ca.root})
	app1 := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app1"), root: ca.root})
	wrongNS := New(&fakeIdentity{svid: ca.svid(t, "/ns/other/app0"), root: ca.root})
	other := newCA(t)
	untrusted := New(&fakeIdentity{svid: other.svid(t, "/ns/default/app0"), root: other.root})
	receiver := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app2"), root: ca.root})
	app1Chunk := signedChunk(t, app1, "app1", "middle", 2)

	tests := []struct {
		name   string
		mutate func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory
		want   string
	}{
		{"empty app ID", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.AppId = ""
			return nil
		}, "appId is empty"},
		{"spoofed app ID", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.AppId = "spoofed-app-name"
			return nil
		}, "identity mismatch"},
		{"events dropped, signatures kept", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawEvents = nil
			return nil
		}, "empty rawEvents"},
		{"event appended", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawEvents = append(c.RawEvents, []byte("bogus-extra-event-bytes"))
			return nil
		}, "coverage mismatch"},
		{"last event removed", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawEvents = c.RawEvents[:len(c.RawEvents)-1]
			return nil
		}, "exceeds events length"},
		{"event changed", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawEvents[0][0] ^= 0xFF
			return nil
		}, "chunk 0"},
		{"signatures stripped", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawSignatures = nil
			return nil
		}, "missing rawSignatures"},
		{"chains stripped", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.SigningCertChains = nil
			return nil
		}, "missing signingCertChains"},
		{"chain swapped for another app's", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.SigningCertChains = [][]byte{app1Chunk.GetSigningCertChains()[0]}
			return nil
		}, "identity mismatch"},
		{"relabelled as another instance", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.InstanceId = "someone-else"
			return nil
		}, "signature verification failed"},
		{"relabelled as another workflow", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.WorkflowName = "other"
			return nil
		}, "signature verification failed"},
		{"signed in another namespace", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			return &protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{signedChunk(t, wrongNS, "app0", "root", 2)}}
		}, "namespace \"other\""},
		{"signed under another trust anchor", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			return &protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{signedChunk(t, untrusted, "app0", "root", 2)}}
		}, "chain-of-trust"},
		{"one bad chunk of two", func(c *protos.PropagatedHistoryChunk) *protos.PropagatedHistory {
			c.RawSignatures = nil
			return &protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{c, app1Chunk}}
		}, "chunk 0 (app \"app0\")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := signedChunk(t, app0, "app0", "root", 3)
			ph := tt.mutate(c)
			if ph == nil {
				ph = &protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{c}}
			}
			chains, err := receiver.VerifyPropagated(ph, "default")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("VerifyPropagated = %v, want an error containing %q", err, tt.want)
			}
			if chains != nil {
				t.Errorf("a failed verification returned %d chains", len(chains))
			}
		})
	}
}

func TestSignChunkNeedsEvents(t *testing.T) {
	ca := newCA(t)
	s := New(&fakeIdentity{svid: ca.svid(t, "/ns/default/app"), root: ca.root})
	if err := s.SignChunk(&protos.PropagatedHistoryChunk{AppId: "app"}); err == nil {
		t.Fatal("signed a chunk without events")
	}
}

// FuzzVerifyPropagated: whatever a store or a peer hands the receiver,
// verification returns an error or chains and never panics.
func FuzzVerifyPropagated(f *testing.F) {
	ca := newCA(f)
	s := New(&fakeIdentity{svid: ca.svid(f, "/ns/default/app0"), root: ca.root})
	c := &protos.PropagatedHistoryChunk{AppId: "app0", InstanceId: "i", RawEvents: rawEvents(f, 2)}
	if err := s.SignChunk(c); err != nil {
		f.Fatal(err)
	}
	seed, _ := proto.Marshal(&protos.PropagatedHistory{Chunks: []*protos.PropagatedHistoryChunk{c}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ph := new(protos.PropagatedHistory)
		if proto.Unmarshal(b, ph) != nil {
			return
		}
		_, _ = s.VerifyPropagated(ph, "default")
	})
}
