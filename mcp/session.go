package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Resolved is what a server's connection needs beyond its resource: the
// header and stdio environment values with their secretKeyRef and envRef
// entries read, and the OAuth2 client secret.
type Resolved struct {
	// Headers are the HTTP transport's headers, by name.
	Headers map[string]string
	// Env are the stdio command's extra variables, NAME=value.
	Env []string
	// ClientSecret is auth.oauth2's secret.
	ClientSecret string
	// JWT returns the sidecar's JWT SVID for an audience (auth.spiffe.jwt);
	// nil without a workload identity (no mTLS), when no token is sent.
	JWT func(audience string) (string, error)
}

const (
	clientName    = "dapr"
	clientVersion = "v1alpha1"
	keepAlive     = 30 * time.Second
	// headerTimeout bounds the wait for a response's headers, so a server
	// that accepts the connection and never answers fails the call (the
	// body of an SSE stream is not bounded).
	headerTimeout = 5 * time.Second
)

// session is the connection to one server, made again when it breaks.
type session struct {
	server   *Server
	resolved Resolved

	mu     sync.Mutex
	cur    *sdk.ClientSession
	closed bool
	// stop ends the OAuth2 token refresher.
	life context.Context
	stop context.CancelFunc
}

// connect opens a session to server (its first connection is made here:
// a server that cannot be reached is an error, as a component's Init).
func connect(ctx context.Context, server *Server, resolved Resolved) (*session, error) {
	life, stop := context.WithCancel(context.Background())
	s := &session{server: server, resolved: resolved, life: life, stop: stop}
	cs, err := s.dial(ctx)
	if err != nil {
		stop()
		return nil, err
	}
	s.cur = cs
	return s, nil
}

// get returns the live session, connecting again if the last one broke.
func (s *session) get(ctx context.Context) (*sdk.ClientSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the MCP server's connection is closed (the MCPServer was removed or reloaded)")
	}
	if s.cur != nil {
		return s.cur, nil
	}
	cs, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = cs
	return cs, nil
}

// reconnect drops old (if it is still the current session) and connects
// again.
func (s *session) reconnect(ctx context.Context, old *sdk.ClientSession) (*sdk.ClientSession, error) {
	s.mu.Lock()
	if s.cur == old && old != nil {
		_ = old.Close()
		s.cur = nil
	}
	s.mu.Unlock()
	return s.get(ctx)
}

// close ends the session for good.
func (s *session) close() {
	s.mu.Lock()
	cs := s.cur
	s.cur, s.closed = nil, true
	s.mu.Unlock()
	s.stop()
	if cs != nil {
		_ = cs.Close()
	}
}

// do runs f on the session; when the connection turns out to be closed
// (the server restarted), it connects again and runs f once more.
func do[T any](ctx context.Context, s *session, f func(context.Context, *sdk.ClientSession) (T, error)) (T, error) {
	cs, err := s.get(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	out, err := f(ctx, cs)
	if err == nil || !(errors.Is(err, sdk.ErrConnectionClosed) || errors.Is(err, sdk.ErrSessionMissing)) {
		return out, err
	}
	if cs, err = s.reconnect(ctx, cs); err != nil {
		var zero T
		return zero, fmt.Errorf("reconnect: %w", err)
	}
	return f(ctx, cs)
}

// dial connects. The connection outlives ctx (an SSE transport's stream
// is bound to the context it is opened with, and the session lives until
// closed); ctx bounds only the wait for it.
func (s *session) dial(ctx context.Context) (*sdk.ClientSession, error) {
	transport, err := s.transport()
	if err != nil {
		return nil, err
	}
	c := sdk.NewClient(&sdk.Implementation{Name: clientName, Version: clientVersion}, &sdk.ClientOptions{KeepAlive: keepAlive})
	connCtx, cancel := context.WithCancel(s.life)
	type result struct {
		cs  *sdk.ClientSession
		err error
	}
	done := make(chan result, 1)
	go func() {
		cs, err := c.Connect(connCtx, transport, nil)
		done <- result{cs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			cancel()
			return nil, fmt.Errorf("connect to MCP server %q: %w", s.server.Name(), r.err)
		}
		// The connection ends with the session (close cancels s.life).
		go func() {
			_ = r.cs.Wait()
			cancel()
		}()
		return r.cs, nil
	case <-ctx.Done():
		cancel()
		// The SDK may take a while to give up (it closes the session
		// it was making); that is not waited for.
		go func() {
			if r := <-done; r.cs != nil {
				_ = r.cs.Close()
			}
		}()
		return nil, fmt.Errorf("connect to MCP server %q: %w", s.server.Name(), ctx.Err())
	}
}

func (s *session) transport() (sdk.Transport, error) {
	ep := s.server.Spec.Endpoint
	switch {
	case ep.StreamableHTTP != nil:
		// No standalone GET stream: the sidecar only lists and calls
		// tools, and a server without one would hold Connect up.
		return &sdk.StreamableClientTransport{Endpoint: ep.StreamableHTTP.URL, HTTPClient: s.httpClient(ep.StreamableHTTP), DisableStandaloneSSE: true}, nil
	case ep.SSE != nil:
		return &sdk.SSEClientTransport{Endpoint: ep.SSE.URL, HTTPClient: s.httpClient(ep.SSE)}, nil
	case ep.Stdio != nil:
		cmd := exec.Command(ep.Stdio.Command, ep.Stdio.Args...) //nolint:gosec // the resource names the command
		if len(s.resolved.Env) > 0 {
			// The sidecar's environment (PATH, HOME) and the resource's
			// variables after it, which win.
			cmd.Env = append(os.Environ(), s.resolved.Env...)
		}
		return &sdk.CommandTransport{Command: cmd}, nil
	}
	return nil, fmt.Errorf("MCPServer %q has no transport: set one of streamableHTTP, sse or stdio", s.server.Name())
}

// httpClient is the client of an HTTP transport: its own connection pool,
// the headers on every request, and an OAuth2 token when configured. It
// has no overall timeout (an SSE stream lives long); calls have deadlines.
func (s *session) httpClient(t *HTTPTransport) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = headerTimeout
	var rt http.RoundTripper = base
	if t.Auth != nil && t.Auth.OAuth2 != nil {
		o := t.Auth.OAuth2
		cc := clientcredentials.Config{ClientID: o.ClientID, ClientSecret: s.resolved.ClientSecret, TokenURL: o.Issuer, Scopes: o.Scopes}
		if o.Audience != "" {
			cc.EndpointParams = map[string][]string{"audience": {o.Audience}}
		}
		// The token endpoint is called with the plain transport.
		life := context.WithValue(s.life, oauth2.HTTPClient, &http.Client{Transport: base})
		rt = &oauth2.Transport{Source: cc.TokenSource(life), Base: base}
	}
	if t.Auth != nil && t.Auth.OAuth2 == nil && t.Auth.SPIFFE != nil && t.Auth.SPIFFE.JWT != nil && s.resolved.JWT != nil {
		// OAuth2 wins when both are set, as in daprd.
		j := t.Auth.SPIFFE.JWT
		rt = jwtRoundTripper{header: j.Header, prefix: j.HeaderValuePrefix, audience: j.Audience, token: s.resolved.JWT, next: rt}
	}
	if len(s.resolved.Headers) > 0 {
		rt = headerRoundTripper{headers: s.resolved.Headers, next: rt}
	}
	return &http.Client{Transport: rt}
}

// jwtRoundTripper puts the sidecar's current JWT SVID for audience in
// header (after prefix) on every request: the token is read each time, so
// a renewed SVID is used from the next request on.
type jwtRoundTripper struct {
	header, prefix, audience string
	token                    func(audience string) (string, error)
	next                     http.RoundTripper
}

func (j jwtRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := j.token(j.audience)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE JWT fetch failed: %w", err)
	}
	r := req.Clone(req.Context())
	r.Header.Set(j.header, j.prefix+tok)
	return j.next.RoundTrip(r)
}

type headerRoundTripper struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}
