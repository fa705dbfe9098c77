package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke/resolve"
)

func TestWriteHTTP(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"no app id", DirectInvokeNoAppID(), 404, "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id"},
		{"not ready", HealthNotReady("app channel"), 500, "ERR_HEALTH_NOT_READY", "dapr is not ready: app channel"},
		{"outbound", OutboundHealthNotReady(), 500, "ERR_OUTBOUND_HEALTH_NOT_READY", "dapr outbound is not ready"},
		{"unimplemented", APIUnimplemented(), 501, "ERR_API_UNIMPLEMENTED", "this API is currently not implemented"},
		{"too large", BodyTooLarge(4 << 20), 413, "ERR_BODY_TOO_LARGE", "request body is larger than the limit of 4194304 bytes"},
		{"malformed", MalformedRequest("bad %s", "json"), 400, "ERR_MALFORMED_REQUEST", "bad json"},
		{"wrapped", fmt.Errorf("ctx: %w", PermissionDenied("no")), 403, "ERR_PERMISSION_DENIED", "no"},
		{"plain error", errors.New("boom"), 500, "ERR_INTERNAL", "boom"},
		{"invoke", DirectInvoke("orders", errors.New("dial 10.0.0.1:50002: refused")), 500, "ERR_DIRECT_INVOKE", "failed to invoke, id: orders, err: dial 10.0.0.1:50002: refused"},
		{"invoke unknown app", DirectInvoke("orders", fmt.Errorf("resolve: %w", resolve.ErrNotFound)), 500, "ERR_DIRECT_INVOKE", `app "orders" is not running or not registered with name resolution: start it with tandem run`},
		{"invoke denied", DirectInvoke("orders", status.Error(codes.PermissionDenied, "acl")), 403, "ERR_DIRECT_INVOKE", "acl"},
		{"pubsub forbidden", PubSubForbidden("orders", "shop", "add it to publishingScopes"), 403, "ERR_PUBSUB_FORBIDDEN", "topic orders is not allowed for app id shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteHTTP(rec, tt.err)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			var b struct{ ErrorCode, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if b.ErrorCode != tt.wantCode {
				t.Errorf("errorCode = %q, want %q", b.ErrorCode, tt.wantCode)
			}
			if !strings.Contains(b.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", b.Message, tt.wantMsg)
			}
		})
	}
}

func TestGRPC(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
		msg  string
	}{
		{"nil", nil, codes.OK, ""},
		{"api error", DirectInvokeNoAppID(), codes.NotFound, "failed getting app id either from the URL path or the header dapr-app-id"},
		{"wrapped", fmt.Errorf("x: %w", BodyTooLarge(1)), codes.ResourceExhausted, "request body is larger"},
		{"status kept", status.Error(codes.Aborted, "stop"), codes.Aborted, "stop"},
		{"plain", errors.New("boom"), codes.Internal, "boom"},
		{"pubsub forbidden", PubSubForbidden("orders", "shop", "x"), codes.PermissionDenied, "topic orders is not allowed for app id shop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := GRPC(tt.err)
			st := status.Convert(err)
			if st.Code() != tt.want {
				t.Errorf("code = %v, want %v", st.Code(), tt.want)
			}
			if !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("message = %q, want %q", st.Message(), tt.msg)
			}
		})
	}
}

func TestErrorIsAndStatus(t *testing.T) {
	err := fmt.Errorf("wrap: %w", DirectInvoke("a", errors.New("x")))
	if !errors.Is(err, DirectInvoke("b", errors.New("y"))) {
		t.Error("errors.Is should ignore the message")
	}
	if errors.Is(err, DirectInvokeNoAppID()) {
		t.Error("404 and 500 ERR_DIRECT_INVOKE must differ")
	}
	if status.Code(DirectInvokeNoAppID()) != codes.NotFound {
		t.Error("status.Code must see the gRPC code")
	}
}

func TestCodeTables(t *testing.T) {
	h := []struct {
		c    codes.Code
		want int
	}{
		{codes.OK, 200}, {codes.Canceled, 408}, {codes.Unknown, 500}, {codes.InvalidArgument, 400},
		{codes.DeadlineExceeded, 504}, {codes.NotFound, 404}, {codes.AlreadyExists, 409},
		{codes.PermissionDenied, 403}, {codes.Unauthenticated, 401}, {codes.ResourceExhausted, 429},
		{codes.FailedPrecondition, 400}, {codes.Aborted, 409}, {codes.OutOfRange, 400},
		{codes.Unimplemented, 501}, {codes.Internal, 500}, {codes.Unavailable, 503}, {codes.DataLoss, 500},
		{codes.Code(99), 500},
	}
	for _, tt := range h {
		if got := HTTPStatusFromCode(tt.c); got != tt.want {
			t.Errorf("HTTPStatusFromCode(%v) = %d, want %d", tt.c, got, tt.want)
		}
	}
	g := []struct {
		s    int
		want codes.Code
	}{
		{200, codes.OK}, {204, codes.OK}, {299, codes.OK}, {408, codes.Canceled}, {500, codes.Unknown},
		{400, codes.Internal}, {504, codes.DeadlineExceeded}, {404, codes.NotFound}, {409, codes.AlreadyExists},
		{403, codes.PermissionDenied}, {401, codes.Unauthenticated}, {429, codes.ResourceExhausted},
		{501, codes.Unimplemented}, {503, codes.Unavailable}, {302, codes.Unknown}, {418, codes.Unknown},
	}
	for _, tt := range g {
		if got := CodeFromHTTPStatus(tt.s); got != tt.want {
			t.Errorf("CodeFromHTTPStatus(%d) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestFromHTTPStatus(t *testing.T) {
	if err := FromHTTPStatus(204, "x"); err != nil {
		t.Fatalf("2xx must be nil, got %v", err)
	}
	long := strings.Repeat("é", 40) // 80 bytes, cut inside a rune at 63
	err := FromHTTPStatus(404, long)
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "Not Found" {
		t.Fatalf("status = %v %q", st.Code(), st.Message())
	}
	if len(st.Details()) != 1 {
		t.Fatalf("details = %v", st.Details())
	}
	info, ok := st.Details()[0].(*errdetails.ErrorInfo)
	if !ok {
		t.Fatalf("detail type %T", st.Details()[0])
	}
	if info.GetDomain() != "dapr.io" || info.GetMetadata()["http.code"] != "404" {
		t.Errorf("info = %v", info)
	}
	d := info.GetMetadata()["http.error_message"]
	if len(d) > 63 || !utf8.ValidString(d) || !strings.HasPrefix(long, d) {
		t.Errorf("detail %q not a valid prefix of <= 63 bytes", d)
	}
}

// The gRPC API's errors keep their *Error reachable for the error-code
// metric, with daprd's category, while gRPC sends the same status and
// the error reads as a status error.
func TestGRPCKeepsCodeAndCategory(t *testing.T) {
	tests := []struct {
		err            *Error
		code, category string
	}{
		{WorkflowNotFound("x"), "ERR_INSTANCE_ID_NOT_FOUND", CategoryWorkflow},
		{Workflow(WorkflowPurge, "x", errors.New("boom")), "ERR_PURGE_WORKFLOW", CategoryWorkflow},
		{WorkflowNameMissing(), "ERR_WORKFLOW_NAME_MISSING", CategoryWorkflow},
		{DirectInvokeNoAppID(), CodeDirectInvoke, CategoryServiceInvocation},
		{BodyTooLarge(1), "ERR_BODY_TOO_LARGE", CategoryCommon},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			out := GRPC(tt.err)
			var e *Error
			if !errors.As(out, &e) || e.ErrorCode() != tt.code || e.ErrorCategory() != tt.category {
				t.Fatalf("GRPC(%v) unwraps to %v, want code %s category %s", tt.err, e, tt.code, tt.category)
			}
			st, ok := status.FromError(out)
			if !ok || st.Code() != tt.err.GRPCCode || st.Message() != tt.err.Message {
				t.Errorf("status %v, want %v %q", st, tt.err.GRPCCode, tt.err.Message)
			}
			if want := tt.err.GRPCStatus().Err().Error(); out.Error() != want {
				t.Errorf("Error() = %q, want %q", out.Error(), want)
			}
		})
	}
	for code, want := range map[string]string{"ERR_TRY_LOCK": CategoryLock, "ERR_UNLOCK": CategoryLock, "ERR_INSTANCE_ID_TOO_LONG": CategoryWorkflow, "ERR_ACTOR_INSTANCE_MISSING": "actor"} {
		if got := CategoryOf(code); got != want {
			t.Errorf("CategoryOf(%s) = %s, want %s", code, got, want)
		}
	}
}
