package apierr

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestKitErrorPassesThrough(t *testing.T) {
	st, _ := status.New(codes.DataLoss, "get-error").WithDetails(&errdetails.ErrorInfo{
		Reason: "get-reason", Domain: "get-domain",
		Metadata: map[string]string{"kit_error": "true", "http_code": "506", "tag": "get-tag"},
	})
	e := StateGet("k", "s", fmt.Errorf("wrapped: %w", st.Err()))
	if e.Code != "get-tag" || e.HTTPStatus != 506 || e.GRPCCode != codes.DataLoss || e.Message != "get-error" {
		t.Fatalf("got %+v", e)
	}
	if got := GRPC(e).Error(); got != "rpc error: code = DataLoss desc = get-error" {
		t.Fatalf("gRPC error %q", got)
	}
	// Any other status is the usual ERR_STATE_GET.
	if e := StateGet("k", "s", status.Error(codes.DataLoss, "x")); e.Code != CodeStateGet {
		t.Fatalf("plain status: %+v", e)
	}
	if e := StateGet("k", "s", errors.New("x")); e.Code != CodeStateGet {
		t.Fatalf("plain error: %+v", e)
	}
}
