package placement

import (
	"testing"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
)

func TestCheckHost(t *testing.T) {
	v := uint64(1)
	me := &identity.App{TrustDomain: "public", Namespace: "ns", AppID: "app"}
	for _, tc := range []struct {
		name   string
		h      *placementv1.Host
		caller *identity.App
		want   codes.Code
	}{
		{"nil", nil, nil, codes.InvalidArgument},
		{"version without operation", &placementv1.Host{Id: "app", Namespace: "ns", Version: &v}, nil, codes.InvalidArgument},
		{"no id", &placementv1.Host{Namespace: "ns"}, nil, codes.InvalidArgument},
		{"plain", &placementv1.Host{Id: "app", Namespace: "ns", Entities: []string{"a"}}, nil, codes.OK},
		{"own identity", &placementv1.Host{Id: "app", Namespace: "ns"}, me, codes.OK},
		{"other app id", &placementv1.Host{Id: "other", Namespace: "ns"}, me, codes.PermissionDenied},
		{"other namespace", &placementv1.Host{Id: "app", Namespace: "x"}, me, codes.PermissionDenied},
		{"own internal type", &placementv1.Host{Id: "app", Namespace: "ns", Entities: []string{"dapr.internal.ns.app.workflow"}}, nil, codes.OK},
		{"short internal type", &placementv1.Host{Id: "app", Namespace: "ns", Entities: []string{"dapr.internal.ns"}}, nil, codes.PermissionDenied},
		{"internal type of another app", &placementv1.Host{Id: "app", Namespace: "ns", Entities: []string{"dapr.internal.ns.b.workflow"}}, nil, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(checkHost(tc.h, tc.caller)); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePeers(t *testing.T) {
	got := ParsePeers([]string{"a=127.0.0.1:1", " b = h:2 ", "bad", "c=x=y"})
	want := []Peer{{"a", "127.0.0.1:1"}, {"b", "h:2"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}
