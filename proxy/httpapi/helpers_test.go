package httpapi

import (
	"bytes"
	"context"
	"io"
	"sync"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
)

// call is one invocation the fake invoker saw.
type call struct {
	appID string
	req   *invoke.Request
	body  []byte
	err   error
}

// fakeInvoker records calls, reads the whole body and answers with respond.
type fakeInvoker struct {
	mu      sync.Mutex
	calls   []call
	respond func(appID string, req *invoke.Request) (*invoke.Response, error)
}

func (f *fakeInvoker) Invoke(_ context.Context, appID string, req *invoke.Request) (*invoke.Response, error) {
	c := call{appID: appID, req: req}
	if req.Body != nil {
		c.body, c.err = io.ReadAll(req.Body)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	if f.respond == nil {
		return httpResp(200, nil, "", "ok"), nil
	}
	return f.respond(appID, req)
}

func (f *fakeInvoker) last() call {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return call{}
	}
	return f.calls[len(f.calls)-1]
}

func httpResp(code int32, headers map[string][]string, ct, body string) *invoke.Response {
	md := map[string]*internalsv1.ListStringValue{}
	for k, v := range headers {
		md[k] = &internalsv1.ListStringValue{Values: v}
	}
	return &invoke.Response{
		Message: &internalsv1.InternalInvokeResponse{
			Status:  &internalsv1.Status{Code: code},
			Headers: md,
			Message: &commonv1.InvokeResponse{ContentType: ct},
		},
		Body: io.NopCloser(bytes.NewReader([]byte(body))),
	}
}
