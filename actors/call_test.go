package actors

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// TestReadAnswer: the app's answer is read whole whatever size it
// announced (exact, too small, too large, none), and a failed read is
// the error.
func TestReadAnswer(t *testing.T) {
	body := strings.Repeat("x", 1500)
	for _, tc := range []struct {
		name      string
		announced int64
	}{
		{"exact", 1500},
		{"announced smaller", 1000},
		{"announced one byte less", 1499},
		{"announced larger", 4000},
		{"unknown", -1},
		{"zero", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per Read, so every path of the loop is taken.
			r := iotest.OneByteReader(strings.NewReader(body))
			got, err := readAnswer(&invoke.Response{Body: io.NopCloser(r), ContentLength: tc.announced})
			if err != nil || string(got) != body {
				t.Fatalf("read %d bytes, %v; want the %d bytes", len(got), err, len(body))
			}
		})
	}
	t.Run("read fails", func(t *testing.T) {
		r := io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := readAnswer(&invoke.Response{Body: io.NopCloser(r), ContentLength: 10}); err != io.ErrUnexpectedEOF {
			t.Fatalf("error %v, want the reader's", err)
		}
	})
}

// TestTurnIDWithoutReentrancy: a type without reentrancy keys no turn by
// ID, and its request gets no Dapr-Reentrancy-Id.
func TestTurnIDWithoutReentrancy(t *testing.T) {
	r := &Runtime{}
	req := &internalsv1.InternalInvokeRequest{Actor: &internalsv1.Actor{ActorType: "t", ActorId: "1"}}
	if id := r.turnID(&actor{cfg: TypeConfig{}}, req); id != "" {
		t.Fatalf("turn ID %q, want none", id)
	}
	if _, ok := req.GetMetadata()[ReentrancyIDHeader]; ok {
		t.Fatal("reentrancy ID added for a type without reentrancy")
	}
	id := r.turnID(&actor{cfg: TypeConfig{Reentrant: true}}, req)
	if id == "" || req.GetMetadata()[ReentrancyIDHeader].GetValues()[0] != id {
		t.Fatalf("reentrant turn ID %q, metadata %v; want one made and passed on", id, req.GetMetadata())
	}
}
