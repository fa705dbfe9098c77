package grpcapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/headers"
)

// httpStatusKey is the response header carrying an HTTP app's status.
const httpStatusKey = "dapr-http-status"

// InvokeService calls a method of another app (Dapr's deprecated but still
// used non-proxy invocation). The app's headers come back as gRPC headers.
// An HTTP app's status outside 2xx becomes a gRPC error (CodeFromHTTPStatus,
// with an ErrorInfo holding the status and the start of the body) and its
// status is in header dapr-http-status; a gRPC app's status is returned as
// is, with its trailers.
func (a *API) InvokeService(ctx context.Context, in *runtimev1.InvokeServiceRequest) (*commonv1.InvokeResponse, error) {
	if a.cfg.Invoker == nil {
		return nil, apierr.GRPC(apierr.DirectInvokeNotReady())
	}
	appID := in.GetId()
	if appID == "" {
		return nil, apierr.GRPC(apierr.DirectInvokeNoAppID())
	}
	msg := in.GetMessage()
	data := msg.GetData().GetValue()
	fwd := &commonv1.InvokeRequest{
		Method:        msg.GetMethod(),
		ContentType:   msg.GetContentType(),
		HttpExtension: msg.GetHttpExtension(),
	}
	if tu := msg.GetData().GetTypeUrl(); tu != "" {
		// The bytes travel in Body; the type URL stays with the message.
		fwd.Data = &anypb.Any{TypeUrl: tu}
	}
	var md headers.Metadata
	if inMD, ok := metadata.FromIncomingContext(ctx); ok {
		md = headers.FromGRPC(inMD)
	}
	if appID != a.cfg.AppID && a.cfg.Forwarded != nil && (a.cfg.External == nil || !a.cfg.External(appID)) {
		// daprd adds the forwarding entries to every call that leaves for
		// another sidecar, whichever API it came in by.
		if md == nil {
			md = make(headers.Metadata, 3)
		}
		a.cfg.Forwarded.AddTo(md)
	}
	req := &invoke.Request{
		Message: &internalsv1.InternalInvokeRequest{
			Ver:      internalsv1.APIVersion_V1,
			Message:  fwd,
			Metadata: md,
		},
		// The request's bytes go out as they are (not copied to be
		// replayable): the message is this call's until it returns.
		Body:          invoke.NewMemBody(data),
		ContentLength: int64(len(data)),
	}

	resp, err := a.cfg.Invoker.Invoke(ctx, appID, req)
	if err != nil {
		a.log.Debug("service invocation failed", "app_id", appID, "method", msg.GetMethod(), "error", err)
		return nil, apierr.GRPC(apierr.DirectInvoke(appID, err))
	}
	if resp.Body == nil {
		resp.Body = io.NopCloser(bytes.NewReader(nil))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, apierr.GRPC(apierr.DirectInvoke(appID, fmt.Errorf("read response: %w", err)))
	}

	rm := resp.Message
	hdr := headers.ToGRPC(rm.GetHeaders())
	var callErr error
	if resp.IsHTTP() {
		code := int(rm.GetStatus().GetCode())
		callErr = apierr.FromHTTPStatus(code, string(body))
		hdr.Set(httpStatusKey, strconv.Itoa(code))
	} else {
		if st := rm.GetStatus(); st.GetCode() != int32(codes.OK) {
			callErr = status.ErrorProto(&spb.Status{Code: st.GetCode(), Message: st.GetMessage(), Details: st.GetDetails()})
		}
		if tr := headers.ToGRPC(rm.GetTrailers()); len(tr) > 0 {
			_ = grpc.SetTrailer(ctx, tr)
		}
	}
	if len(hdr) > 0 {
		if err := grpc.SetHeader(ctx, hdr); err != nil {
			a.log.Debug("set invocation response headers", "app_id", appID, "error", err)
		}
	}
	if callErr != nil {
		return nil, callErr
	}
	out := &commonv1.InvokeResponse{
		ContentType: rm.GetMessage().GetContentType(),
		Data:        &anypb.Any{TypeUrl: rm.GetMessage().GetData().GetTypeUrl(), Value: body},
	}
	return out, nil
}
