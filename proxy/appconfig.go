package proxy

import (
	"context"
	"io"
	"net/http"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// appConfigTimeout bounds the start-up GET /dapr/config.
const appConfigTimeout = 10 * time.Second

// readAppConfig asks the app for its configuration (GET /dapr/config) once,
// the first time it is ready (healthy, with health probes on), as daprd does
// before it asks for the app's subscriptions: the call carries Dapr-App-Id
// and is made whether or not the app hosts actors. Only the actor runtime
// uses the answer, and it reads /dapr/config itself, so the call is skipped
// when there is one (or with --disable-init-endpoints config, or for a gRPC
// app, which daprd does not ask either). A failed call is logged, not
// retried, as in daprd.
func (s *Sidecar) readAppConfig(ctx context.Context) {
	s.appConfigOnce.Do(func() {
		if s.o.SkipAppConfig || s.o.APIs.Actors != nil || s.o.App == nil || s.o.App.HTTP == nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, appConfigTimeout)
		defer cancel()
		code, err := getAppConfig(ctx, s.o.App.HTTP, s.o.Self.AppID)
		switch {
		case err != nil:
			s.log.Warn("could not read the app's configuration (GET /dapr/config); going on without it", "error", err)
		case code == http.StatusOK:
			s.log.Info("Application configuration loaded")
		default:
			s.log.Debug("the app has no configuration (GET /dapr/config)", "status", code)
		}
	})
}

// getAppConfig makes the GET /dapr/config call on app and returns the
// status; the body is read and dropped.
func getAppConfig(ctx context.Context, app invoke.AppChannel, appID string) (int, error) {
	resp, err := app.Invoke(ctx, &invoke.Request{Message: &internalsv1.InternalInvokeRequest{
		Ver: internalsv1.APIVersion_V1,
		Message: &commonv1.InvokeRequest{
			Method: "dapr/config", ContentType: "application/json",
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_GET},
		},
		Metadata: map[string]*internalsv1.ListStringValue{"dapr-app-id": {Values: []string{appID}}},
	}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return int(resp.Message.GetStatus().GetCode()), nil
}
