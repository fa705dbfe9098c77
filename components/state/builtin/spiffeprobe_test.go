//go:build state_spiffeprobe

package builtin

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

type probeX509 struct{}

func (probeX509) GetX509SVID() (*x509svid.SVID, error) { return &x509svid.SVID{}, nil }

type probeJWT struct{}

func (probeJWT) JWT(string) (string, error) { return "t", nil }

// The probe reports which SVID sources its Get context carries.
func TestSpiffeProbe(t *testing.T) {
	s := Stores(nil)[SpiffeProbeType]()
	if err := s.Init(context.Background(), components.Metadata{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{
		{context.Background(), `{"jwt":false,"x509":false}`},
		{components.WithSVID(context.Background(), probeX509{}, probeJWT{}), `{"jwt":true,"x509":true}`},
		{components.WithSVID(context.Background(), probeX509{}, nil), `{"jwt":false,"x509":true}`},
	} {
		res, err := s.Get(tc.ctx, &state.GetRequest{Key: "svid"})
		if err != nil || string(res.Data) != tc.want {
			t.Errorf("Get = %+v, %v; want %s", res, err, tc.want)
		}
	}
}
