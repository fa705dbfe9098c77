package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the google.rpc.ErrorInfo domain of every Dapr error.
const Domain = "dapr.io"

// Error is one Dapr API error: the errorCode of the JSON body, the HTTP
// status and the gRPC code used for the same failure, and the
// google.rpc.Status details of Dapr's rich error model (ErrorInfo first of
// all) for the errors where daprd sends them.
type Error struct {
	Code       string
	HTTPStatus int
	GRPCCode   codes.Code
	Message    string
	// Category is Dapr's error category ("state", "secret", "pubsub",
	// "common", ...), the category label of dapr_error_code_total; empty
	// means the category Dapr gives Code (see CategoryOf).
	Category string
	// Details are the google.rpc error details (ErrorInfo, ResourceInfo,
	// BadRequest, Help), in the order daprd adds them. They travel in the
	// gRPC status and in the "details" array of the HTTP body.
	Details []protoadapt.MessageV1
	// passThrough, when set, is the status gRPC callers get instead of
	// the one built from the fields above: daprd hands a pluggable
	// component's own error (kit.go) to gRPC callers as it came, while its
	// HTTP API wraps it in its own errorCode and message.
	passThrough *status.Status
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the gRPC code and
// the details.
func (e *Error) GRPCStatus() *status.Status {
	if e.passThrough != nil {
		return e.passThrough
	}
	st := status.New(e.GRPCCode, e.Message)
	if len(e.Details) == 0 {
		return st
	}
	withDetails, err := st.WithDetails(e.Details...)
	if err != nil {
		// Only a detail that cannot be marshalled fails, and every
		// detail is a google.rpc message.
		return st
	}
	return withDetails
}

// Is matches another *Error with the same code and statuses, ignoring the
// message, so errors.Is(err, apierr.DirectInvokeNoAppID()) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return e.Code == t.Code && e.HTTPStatus == t.HTTPStatus && e.GRPCCode == t.GRPCCode
}

// ErrorCode is the errorCode of the HTTP body and of the metric: Code, or
// the ErrorInfo reason of an error without one, as in Dapr.
func (e *Error) ErrorCode() string {
	if e.Code != "" {
		return e.Code
	}
	for _, d := range e.Details {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() != "" {
			return ei.GetReason()
		}
	}
	return e.Code
}

// withErrorInfo adds google.rpc.ErrorInfo (domain dapr.io) with reason and
// metadata; nil metadata stays nil, as daprd sends it.
func (e *Error) withErrorInfo(reason string, metadata map[string]string) *Error {
	e.Details = append(e.Details, &errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: metadata})
	return e
}

// withResource adds google.rpc.ResourceInfo naming the component.
func (e *Error) withResource(kind, name string) *Error {
	e.Details = append(e.Details, resourceInfo(kind, name, ""))
	return e
}

func resourceInfo(kind, name, description string) *errdetails.ResourceInfo {
	return &errdetails.ResourceInfo{ResourceType: kind, ResourceName: name, Description: description}
}

// withFieldViolation adds google.rpc.BadRequest with one field violation.
func (e *Error) withFieldViolation(field, description string) *Error {
	e.Details = append(e.Details, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: description}},
	})
	return e
}

// withHelp adds google.rpc.Help with one link.
func (e *Error) withHelp(url, description string) *Error {
	e.Details = append(e.Details, &errdetails.Help{Links: []*errdetails.Help_Link{{Url: url, Description: description}}})
	return e
}

// body is Dapr's JSON error body; details only for rich errors.
type body struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
	Details   []any  `json:"details,omitempty"`
}

// JSON returns the body Dapr writes for this error:
// {"errorCode":"...","message":"...","details":[...]}, each detail an
// object with its "@type" and its fields named as daprd names them.
func (e *Error) JSON() []byte {
	out := body{ErrorCode: e.ErrorCode(), Message: e.Message}
	for _, d := range e.Details {
		out.Details = append(out.Details, detailJSON(d))
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Strings, string maps and slices of them cannot fail.
		panic(err)
	}
	return b
}

const typePrefix = "type.googleapis.com/"

// detailJSON renders one detail in the shape daprd's HTTP API uses (its
// own field names, not protojson's).
func detailJSON(d protoadapt.MessageV1) map[string]any {
	typ := typePrefix + string(protoadapt.MessageV2Of(d).ProtoReflect().Descriptor().FullName())
	switch x := d.(type) {
	case *errdetails.ErrorInfo:
		return map[string]any{"@type": typ, "reason": x.GetReason(), "domain": x.GetDomain(), "metadata": x.GetMetadata()}
	case *errdetails.ResourceInfo:
		return map[string]any{"@type": typ, "resource_type": x.GetResourceType(), "resource_name": x.GetResourceName(),
			"owner": x.GetOwner(), "description": x.GetDescription()}
	case *errdetails.BadRequest:
		vs := make([]map[string]any, 0, len(x.GetFieldViolations()))
		for _, v := range x.GetFieldViolations() {
			vs = append(vs, nonEmpty("field", v.GetField(), "description", v.GetDescription()))
		}
		return map[string]any{"@type": typ, "field_violations": vs}
	case *errdetails.Help:
		ls := make([]map[string]any, 0, len(x.GetLinks()))
		for _, l := range x.GetLinks() {
			ls = append(ls, nonEmpty("description", l.GetDescription(), "url", l.GetUrl()))
		}
		return map[string]any{"@type": typ, "links": ls}
	default:
		return map[string]any{"@type": typ}
	}
}

// nonEmpty builds an object from key, value pairs, leaving out empty
// values as encoding/json's omitempty does for the nested detail messages.
func nonEmpty(kv ...string) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

// From returns err as an *Error; any other error becomes ERR_INTERNAL (500,
// codes.Internal) with err's text, so nothing leaves the API unmapped.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// ErrorRecorder is implemented by a ResponseWriter wrapper that counts the
// API errors written through it (observe's dapr_error_code_total).
type ErrorRecorder interface {
	RecordErrorCode(code, category string)
}

// recordError hands e to the first ErrorRecorder among w and the writers
// it wraps (Unwrap, as http.ResponseController walks them).
func recordError(w http.ResponseWriter, e *Error) {
	for w != nil {
		if r, ok := w.(ErrorRecorder); ok {
			r.RecordErrorCode(e.ErrorCode(), e.category())
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// ErrorCategory is the category label of dapr_error_code_total: Category,
// or Dapr's category of the code.
func (e *Error) ErrorCategory() string { return e.category() }

// category is Category, or Dapr's category of the code.
func (e *Error) category() string {
	if e.Category != "" {
		return e.Category
	}
	return CategoryOf(e.ErrorCode())
}

// WriteHTTP writes err as Dapr's JSON error body with its HTTP status, and
// records its code for dapr_error_code_total.
func WriteHTTP(w http.ResponseWriter, err error) {
	e := From(err)
	recordError(w, e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.HTTPStatus)
	_, _ = w.Write(e.JSON())
}

// GRPC returns err as a gRPC status error with the code and details of its
// *Error (or codes.Internal). A status error that is not an *Error is
// returned as is. The *Error stays reachable with errors.As, as daprd's
// APIError unwraps to its error code, so the interceptors that count API
// errors (dapr_error_code_total) see its code and category.
func GRPC(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &grpcError{st: e.GRPCStatus(), err: e}
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// withHint adds Tandem's advice to an error daprd sends without details,
// as a google.rpc.Help link, so the message stays daprd's.
func (e *Error) withHint(url, description string) *Error {
	return e.withHelp(url, description)
}

// grpcError is an *Error on its way out of the gRPC API: the status gRPC
// sends, and the *Error it came from.
type grpcError struct {
	st  *status.Status
	err *Error
}

// Error is the status error's text ("rpc error: code = ... desc = ...").
func (g *grpcError) Error() string { return g.st.Err().Error() }

// GRPCStatus is what gRPC sends.
func (g *grpcError) GRPCStatus() *status.Status { return g.st }

// Unwrap returns the *Error.
func (g *grpcError) Unwrap() error { return g.err }
