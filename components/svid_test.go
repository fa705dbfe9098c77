package components

import (
	"context"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type fakeX509 struct{}

func (fakeX509) GetX509SVID() (*x509svid.SVID, error) { return &x509svid.SVID{}, nil }

type fakeJWT struct{}

func (fakeJWT) JWT(string) (string, error) { return "t", nil }

func TestWithSVID(t *testing.T) {
	ctx := context.Background()
	if _, ok := X509SVIDFrom(ctx); ok {
		t.Error("X.509 source in a bare context")
	}
	if _, ok := JWTSVIDFrom(WithSVID(ctx, nil, nil)); ok {
		t.Error("nil JWT source stored")
	}
	if _, ok := JWTSVIDFrom(WithSVID(ctx, fakeX509{}, nil)); ok {
		t.Error("JWT source found where only an X.509 one was stored")
	}
	if _, ok := X509SVIDFrom(WithSVID(ctx, nil, fakeJWT{})); ok {
		t.Error("X.509 source found where only a JWT one was stored")
	}
	// One value per request, made from sources put together once.
	svids := NewSVIDs(fakeX509{}, fakeJWT{})
	if n := testing.AllocsPerRun(50, func() { svids.Context(ctx) }); n > 1 {
		t.Errorf("SVIDs.Context: %v allocations, want 1", n)
	}
	ctx = WithSVID(ctx, fakeX509{}, fakeJWT{})
	if _, ok := X509SVIDFrom(ctx); !ok {
		t.Error("X.509 source lost")
	}
	if j, ok := JWTSVIDFrom(ctx); !ok {
		t.Error("JWT source lost")
	} else if tok, _ := j.JWT("a"); tok != "t" {
		t.Errorf("JWT source gives %q", tok)
	}
}
