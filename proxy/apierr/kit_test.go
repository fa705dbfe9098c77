package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kitStatus is what dapr/dapr's pluggable.MustStatusErrorFromKitError sends.
func kitStatus(t *testing.T, code codes.Code, httpCode, msg, tag, reason string) error {
	t.Helper()
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: reason, Domain: reason + "-domain",
		Metadata: map[string]string{"kit_error": "true", "http_code": httpCode, "tag": tag},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func httpBody(t *testing.T, err error) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	WriteHTTP(w, err)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return w.Code, body
}

// TestKitErrorWrapped: over HTTP daprd wraps a pluggable store's kit error
// in its own code and message with the component's HTTP status; over gRPC
// it passes the component's status through, with only the ErrorInfo's
// reason and domain.
func TestKitErrorWrapped(t *testing.T) {
	kitErr := kitStatus(t, codes.DataLoss, "506", "get-error", "get-tag", "get-reason")
	tests := []struct {
		name     string
		err      *Error
		wantCode string
		wantMsg  string
	}{
		{"get", StateGet("key1", "mystore", kitErr), CodeStateGet,
			"fail to get key1 from state store mystore: api error: code = DataLoss desc = get-error"},
		{"save", StateSave("mystore", StateETagKind{}, fmt.Errorf("wrapped: %w", kitErr)), CodeStateSave,
			"failed saving state in state store mystore: api error: code = DataLoss desc = get-error"},
		{"delete", StateDelete("key1", StateETagKind{}, kitErr), CodeStateDelete,
			"failed deleting state with key key1: api error: code = DataLoss desc = get-error"},
		{"bulk delete", StateBulkDelete("mystore", StateETagKind{}, kitErr), CodeStateBulkDelete,
			"failed deleting state in state store mystore: api error: code = DataLoss desc = get-error"},
		{"bulk get", StateBulkGet("mystore", kitErr), CodeStateBulkGet, "api error: code = DataLoss desc = get-error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := httpBody(t, tt.err)
			if code != 506 || body["errorCode"] != tt.wantCode || body["message"] != tt.wantMsg || body["details"] != nil {
				t.Errorf("HTTP %d %v, want 506 %s %q and no details", code, body, tt.wantCode, tt.wantMsg)
			}
			if tt.err.category() != CategoryState {
				t.Errorf("category %q, want state", tt.err.category())
			}
			st := status.Convert(GRPC(tt.err))
			if st.Code() != codes.DataLoss || st.Message() != "get-error" {
				t.Errorf("gRPC %v, want DataLoss get-error", st)
			}
			d := st.Details()
			if len(d) != 1 {
				t.Fatalf("gRPC details %v, want one ErrorInfo", d)
			}
			ei, ok := d[0].(*errdetails.ErrorInfo)
			if !ok || ei.GetReason() != "get-reason" || ei.GetDomain() != "get-reason-domain" || ei.GetMetadata() != nil {
				t.Errorf("gRPC detail %v, want reason and domain without the kit metadata", d[0])
			}
		})
	}
}

// TestKitErrorQuery: a query's kit error is the API's error as it is.
func TestKitErrorQuery(t *testing.T) {
	e := StateQueryError("mystore", kitStatus(t, codes.AlreadyExists, "509", "query-error", "query-tag", "query-reason"))
	code, body := httpBody(t, e)
	want := map[string]any{"errorCode": "query-tag", "message": "query-error", "details": []any{map[string]any{
		"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "query-reason-domain", "metadata": nil, "reason": "query-reason",
	}}}
	if code != 509 || !reflect.DeepEqual(body, want) {
		t.Errorf("HTTP %d %v, want 509 %v", code, body, want)
	}
	if got := GRPC(e).Error(); got != "rpc error: code = AlreadyExists desc = query-error" {
		t.Errorf("gRPC error %q", got)
	}
}

// TestNotKit: other statuses and errors get the usual codes, and the
// transaction error quotes a kit error in daprd's format but keeps its own
// statuses.
func TestNotKit(t *testing.T) {
	for _, err := range []error{
		status.Error(codes.DataLoss, "x"),
		errors.New("x"),
		kitStatus(t, codes.DataLoss, "not-a-number", "m", "tag", "r"),
	} {
		if e := StateGet("k", "s", err); e.Code != CodeStateGet || e.HTTPStatus != 500 || e.GRPCCode != codes.Internal {
			t.Errorf("StateGet(%v) = %+v, want ERR_STATE_GET 500 Internal", err, e)
		}
	}
	e := StateTransaction(kitStatus(t, codes.Canceled, "510", "tx-error", "tx-tag", "r"))
	if e.Code != CodeStateTransaction || e.HTTPStatus != 500 || status.Code(GRPC(e)) != codes.Internal ||
		e.Message != "error while executing state transaction: api error: code = Canceled desc = tx-error" {
		t.Errorf("StateTransaction = %+v", e)
	}
}
