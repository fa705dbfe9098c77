package apierr

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestReservedActorType(t *testing.T) {
	if e := ReservedActorType("myactor"); e != nil {
		t.Errorf("an app's actor type is reserved: %v", e)
	}
	e := ReservedActorType("dapr.internal.default.app.workflow")
	if e == nil || e.HTTPStatus != http.StatusForbidden || e.GRPCCode != codes.PermissionDenied || e.Code != "ERR_ACTOR_TYPE_RESERVED" ||
		!strings.Contains(e.Message, "reserved for the Dapr workflow runtime") {
		t.Errorf("reserved type: %+v", e)
	}
}
