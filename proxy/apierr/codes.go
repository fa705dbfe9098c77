package apierr

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HTTPStatusFromCode maps a gRPC code to an HTTP status with Dapr's table
// (grpc-gateway's): an HTTP caller of a gRPC app sees this status.
func HTTPStatusFromCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return http.StatusRequestTimeout
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		// FailedPrecondition is deliberately not 412, as in grpc-gateway.
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default: // Unknown, Internal, DataLoss and anything new
		return http.StatusInternalServerError
	}
}

// CodeFromHTTPStatus maps an HTTP status to a gRPC code with Dapr's table
// (grpc's http-grpc-status-mapping plus Dapr's quirk 400 -> Internal).
func CodeFromHTTPStatus(s int) codes.Code {
	if s >= 200 && s < 300 {
		return codes.OK
	}
	switch s {
	case http.StatusRequestTimeout:
		return codes.Canceled
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	default: // 500 and the rest
		return codes.Unknown
	}
}

// maxDetailLen bounds the http.error_message detail; Dapr keeps it under
// the 64 characters google.rpc.ErrorInfo metadata values are limited to.
const maxDetailLen = 63

// FromHTTPStatus is the gRPC error Dapr returns for an HTTP status: nil for
// 2xx, else a status with CodeFromHTTPStatus, the status text as message and
// an ErrorInfo (domain dapr.io) holding http.code and http.error_message
// (detail, cut to 63 bytes). The gRPC InvokeService uses it for HTTP apps'
// errors and the API-token check for 401.
func FromHTTPStatus(httpStatus int, detail string) error {
	c := CodeFromHTTPStatus(httpStatus)
	if c == codes.OK {
		return nil
	}
	text := http.StatusText(httpStatus)
	st := status.New(c, text)
	if len(detail) > maxDetailLen {
		// Cut on a rune boundary: protobuf strings must stay valid UTF-8.
		n := maxDetailLen
		for n > 0 && !utf8.RuneStart(detail[n]) {
			n--
		}
		detail = detail[:n]
	}
	withDetails, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: text,
		Domain: "dapr.io",
		Metadata: map[string]string{
			"http.code":          strconv.Itoa(httpStatus),
			"http.error_message": detail,
		},
	})
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}
