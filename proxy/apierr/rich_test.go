package apierr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The HTTP bodies daprd 1.18 writes for its rich state errors
// (tests/integration/suite/daprd/state/http/errors.go and nostatestore.go).
func TestRichErrorJSON(t *testing.T) {
	errInfo := "type.googleapis.com/google.rpc.ErrorInfo"
	resInfo := "type.googleapis.com/google.rpc.ResourceInfo"
	tests := []struct {
		name    string
		err     *Error
		status  int
		code    string
		message string
		details []map[string]any
	}{
		{"not found", StateStoreNotFound("nope", "app1"), 400, "ERR_STATE_STORE_NOT_FOUND", "state store nope is not found",
			[]map[string]any{{"@type": errInfo, "reason": "DAPR_STATE_NOT_FOUND", "domain": "dapr.io", "metadata": map[string]any{"appID": "app1"}}}},
		{"not configured", StateStoreNotConfigured("mystore", ""), 500, "ERR_STATE_STORE_NOT_CONFIGURED", "state store mystore is not configured",
			[]map[string]any{{"@type": errInfo, "reason": "DAPR_STATE_NOT_CONFIGURED", "domain": "dapr.io", "metadata": nil}}},
		{"illegal key", StateIllegalKey("mystore", "ke||y1"), 400, "ERR_MALFORMED_REQUEST", "input key/keyPrefix 'ke||y1' can't contain '||'",
			[]map[string]any{
				{"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": []any{map[string]any{"field": "ke||y1", "description": "input key/keyPrefix 'ke||y1' can't contain '||'"}}},
				{"@type": resInfo, "resource_type": "state", "resource_name": "mystore", "owner": "", "description": ""},
				{"@type": errInfo, "reason": "DAPR_STATE_ILLEGAL_KEY", "domain": "dapr.io", "metadata": nil},
			}},
		{"too many ops", StateTooManyTransactionalOps("s", 2, 1), 400, "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
			"the transaction contains 2 operations, which is more than what the state store supports: 1",
			[]map[string]any{
				{"@type": resInfo, "resource_type": "state", "resource_name": "s", "owner": "", "description": ""},
				{"@type": errInfo, "reason": "DAPR_STATE_TOO_MANY_TRANSACTIONS", "domain": "dapr.io",
					"metadata": map[string]any{"currentOpsTransaction": "2", "maxOpsPerTransaction": "1"}},
			}},
		// tests/integration/suite/daprd/pubsub/http/errors.go
		{"pubsub metadata", PubSubRequestMetadata("ps", map[string]string{"rawPayload": "x"}, errString("bad")), 400, "ERR_PUBSUB_REQUEST_METADATA",
			"failed deserializing metadata. Error: bad",
			[]map[string]any{
				{"@type": resInfo, "resource_type": "pubsub", "resource_name": "ps", "owner": "", "description": "failed deserializing metadata. Error: bad"},
				{"@type": errInfo, "reason": "DAPR_PUBSUB_METADATA_DESERIALIZATION", "domain": "dapr.io", "metadata": map[string]any{"rawPayload": "x", "error": "bad"}},
			}},
		{"pubsub cloud event", PubSubCloudEvent("ps", "app1", errString("eof")), 500, "ERR_PUBSUB_CLOUD_EVENTS_SER", "cannot create cloudevent",
			[]map[string]any{
				{"@type": resInfo, "resource_type": "pubsub", "resource_name": "ps", "owner": "", "description": "cannot create cloudevent"},
				{"@type": errInfo, "reason": "DAPR_PUBSUB_CLOUD_EVENT_CREATION", "domain": "dapr.io", "metadata": map[string]any{"appID": "app1", "error": "eof"}},
			}},
		{"pubsub marshal events", PubSubMarshalEvents("ps", "t", "app1", errString("dup")), 400, "ERR_PUBSUB_EVENTS_SER",
			"error marshaling events to bytes for topic t pubsub ps. error: dup",
			[]map[string]any{
				{"@type": resInfo, "resource_type": "pubsub", "resource_name": "ps", "owner": "", "description": "error marshaling events to bytes for topic t pubsub ps. error: dup"},
				{"@type": errInfo, "reason": "DAPR_PUBSUB_MARSHAL_EVENTS", "domain": "dapr.io", "metadata": map[string]any{"appID": "app1", "error": "dup"}},
			}},
		{"pubsub name empty", PubSubEmpty(), 404, "ERR_PUBSUB_EMPTY", "pubsub name is empty",
			[]map[string]any{
				{"@type": resInfo, "resource_type": "pubsub", "resource_name": "", "owner": "", "description": "pubsub name is empty"},
				{"@type": errInfo, "reason": "DAPR_PUBSUB_NAME_EMPTY", "domain": "dapr.io", "metadata": nil},
			}},
		{"legacy error has no details", StateGet("k", "s", errString("boom")), 500, "ERR_STATE_GET", "fail to get k from state store s: boom", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteHTTP(rec, tt.err)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var b struct {
				ErrorCode string           `json:"errorCode"`
				Message   string           `json:"message"`
				Details   []map[string]any `json:"details"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if b.ErrorCode != tt.code || b.Message != tt.message {
				t.Errorf("got %q / %q, want %q / %q", b.ErrorCode, b.Message, tt.code, tt.message)
			}
			if !reflect.DeepEqual(b.Details, tt.details) {
				t.Errorf("details = %#v\nwant %#v", b.Details, tt.details)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestRichErrorGRPC(t *testing.T) {
	st := status.Convert(GRPC(StateStoreNotFound("nope", "")))
	if st.Code() != codes.InvalidArgument || st.Message() != "state store nope is not found" {
		t.Fatalf("status = %v %q", st.Code(), st.Message())
	}
	if len(st.Details()) != 1 {
		t.Fatalf("details = %v", st.Details())
	}
	ei, ok := st.Details()[0].(*errdetails.ErrorInfo)
	if !ok || ei.GetReason() != "DAPR_STATE_NOT_FOUND" || ei.GetDomain() != "dapr.io" || ei.GetMetadata() != nil {
		t.Fatalf("detail = %v", st.Details()[0])
	}

	st = status.Convert(GRPC(StateTransactionsNotSupported("s")))
	if st.Code() != codes.Unimplemented || st.Message() != "state store s doesn't support transactions" {
		t.Fatalf("status = %v %q", st.Code(), st.Message())
	}
	var kinds []string
	for _, d := range st.Details() {
		kinds = append(kinds, reflect.TypeOf(d).Elem().Name())
	}
	if want := []string{"Help", "ResourceInfo", "ErrorInfo"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("details = %v, want %v", kinds, want)
	}
}

// countingWriter stands for observe's recorder behind another wrapper.
type countingWriter struct {
	http.ResponseWriter
	code, category string
}

func (c *countingWriter) RecordErrorCode(code, category string) { c.code, c.category = code, category }

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestWriteHTTPRecordsErrorCode(t *testing.T) {
	tests := []struct {
		err            *Error
		code, category string
	}{
		{StateStoreNotConfigured("s", "a"), "ERR_STATE_STORE_NOT_CONFIGURED", "state"},
		{StateIllegalKey("s", "a||b"), "ERR_MALFORMED_REQUEST", "state"},
		{MalformedRequest("bad"), "ERR_MALFORMED_REQUEST", "common"},
		{SecretGet("k", "s", errString("x")), "ERR_SECRET_GET", "secret"},
		{DirectInvokeNoAppID(), "ERR_DIRECT_INVOKE", "service-invocation"},
		{PubSubNotFound("p"), "ERR_PUBSUB_NOT_FOUND", "pubsub"},
		{HealthAppIDNotMatch(), "ERR_HEALTH_APPID_NOT_MATCH", "health"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			cw := &countingWriter{ResponseWriter: httptest.NewRecorder()}
			WriteHTTP(wrapper{cw}, tt.err)
			if cw.code != tt.code || cw.category != tt.category {
				t.Errorf("recorded %q/%q, want %q/%q", cw.code, cw.category, tt.code, tt.category)
			}
		})
	}
}
