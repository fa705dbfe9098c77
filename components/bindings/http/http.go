// Package http is the bindings.http output binding: each call is an HTTP
// request to the component's url (plus the request's path metadata), with
// Dapr's operations (create = POST, get, head, post, put, patch, delete,
// options, trace), request metadata starting with a capital letter sent as
// headers, and the answer's status and headers returned as metadata
// (statusCode, status, <Header>). A status outside 2xx is an error unless
// errorIfNot2XX is false, and its metadata still reaches the caller.
//
// Without a Resiliency policy for the component, failed idempotent requests
// (connection errors, 5xx, 429) are retried a few times with backoff by
// go-retryablehttp; with a policy, the policy alone decides.
package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Type is the component's spec.type.
const Type = "bindings.http"

// Retries without a Resiliency policy.
const (
	retryMax     = 3
	retryWaitMin = 100 * time.Millisecond
	retryWaitMax = 2 * time.Second
)

// Binding is an HTTP output binding.
type Binding struct {
	log    *slog.Logger
	cfg    config
	client *nethttp.Client
	retry  *retryablehttp.Client
}

// New returns an uninitialised HTTP binding.
func New(log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Binding{log: log}
}

// Init reads the metadata and builds the client.
func (b *Binding) Init(_ context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	tc, err := c.tlsConfig(md.Name)
	if err != nil {
		return components.Permanent(err)
	}
	tr := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 15 * time.Second
	tr.TLSClientConfig = tc
	b.cfg, b.client = c, &nethttp.Client{Transport: tr}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = b.client
	rc.RetryMax, rc.RetryWaitMin, rc.RetryWaitMax = retryMax, retryWaitMin, retryWaitMax
	rc.Logger = nil
	// The last answer is returned as is, so its status reaches the caller.
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	b.retry = rc
	return nil
}

// Operations lists Dapr's HTTP binding operations.
func (b *Binding) Operations() []string {
	return []string{"create", "get", "head", "post", "put", "patch", "delete", "options", "trace"}
}

// Invoke sends one request.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if b.client == nil {
		return nil, errors.New("http binding is not initialised")
	}
	md := req.Metadata
	if md == nil {
		md = map[string]string{}
	}
	u := b.cfg.URL
	if p := md["path"]; p != "" {
		u = strings.TrimRight(u, "/") + "/" + strings.TrimLeft(p, "/")
	}
	errorIfNot2XX := b.cfg.ErrorIfNot2XX
	if v := md["errorIfNot2XX"]; v != "" {
		errorIfNot2XX = truthy(v)
	}
	method := strings.ToUpper(req.Operation)
	if method == "CREATE" {
		method = nethttp.MethodPost
	}
	var body []byte
	switch method {
	case nethttp.MethodPut, nethttp.MethodPost, nethttp.MethodPatch:
		body = req.Data
	case nethttp.MethodGet, nethttp.MethodHead, nethttp.MethodDelete, nethttp.MethodOptions, nethttp.MethodTrace:
	default:
		return nil, fmt.Errorf("invalid operation: %s", req.Operation)
	}
	if b.cfg.ResponseTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.ResponseTimeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil || method == nethttp.MethodPost || method == nethttp.MethodPut || method == nethttp.MethodPatch {
		rd = bytes.NewReader(body)
	}
	hr, err := nethttp.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		if _, ok := md["Content-Type"]; !ok {
			hr.Header.Set("Content-Type", "application/json; charset=utf-8")
		}
	}
	if _, ok := md["Accept"]; !ok {
		hr.Header.Set("Accept", "application/json; charset=utf-8")
	}
	if b.cfg.SecurityToken != "" && b.cfg.SecurityTokenHeader != "" {
		hr.Header.Set(b.cfg.SecurityTokenHeader, b.cfg.SecurityToken)
	}
	// Metadata keys starting with a capital letter are headers (Dapr's
	// rule); the trace context always travels.
	for k, v := range md {
		if k != "" && k[0] >= 'A' && k[0] <= 'Z' {
			hr.Header.Set(k, v)
		}
	}
	for _, k := range []string{"traceparent", "tracestate", "baggage"} {
		if v := md[k]; v != "" {
			hr.Header.Set(k, v)
		}
	}
	resp, err := b.do(ctx, hr)
	if err != nil {
		return nil, err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
	}()
	var rb io.Reader = resp.Body
	if b.cfg.MaxResponseBody > 0 {
		rb = io.LimitReader(resp.Body, b.cfg.MaxResponseBody)
	}
	data, err := io.ReadAll(rb)
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s %s: %w", method, u, err)
	}
	out := &bindings.InvokeResponse{Data: data, Metadata: make(map[string]string, len(resp.Header)+2)}
	out.Metadata["statusCode"] = strconv.Itoa(resp.StatusCode)
	out.Metadata["status"] = resp.Status
	for k, vs := range resp.Header {
		out.Metadata[k] = strings.Join(vs, ", ")
	}
	if errorIfNot2XX && resp.StatusCode/100 != 2 {
		return out, &bindings.ResponseError{Response: out, Err: fmt.Errorf("received status code %d", resp.StatusCode)}
	}
	return out, nil
}

// do sends hr, retrying it when no Resiliency policy governs the call and
// the method is idempotent (a POST or PATCH may have had its effect).
func (b *Binding) do(ctx context.Context, hr *nethttp.Request) (*nethttp.Response, error) {
	if bindings.UnderResiliency(ctx) || hr.Method == nethttp.MethodPost || hr.Method == nethttp.MethodPatch {
		return b.client.Do(hr)
	}
	rr, err := retryablehttp.FromRequest(hr)
	if err != nil {
		return nil, err
	}
	return b.retry.Do(rr)
}

// Close releases idle connections.
func (b *Binding) Close() error {
	if b.client != nil {
		b.client.CloseIdleConnections()
	}
	return nil
}
