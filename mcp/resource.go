package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Kind is the resource kind of an MCPServer (apiVersion dapr.io/v1alpha1).
const Kind = "MCPServer"

// APIVersion is the one API version of the MCPServer resource.
const APIVersion = "dapr.io/v1alpha1"

// Server is one MCPServer resource, as written.
type Server struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Meta     `json:"metadata"`
	Spec       Spec     `json:"spec"`
	Scopes     []string `json:"scopes,omitempty"`
}

// Meta is the part of metadata the sidecar reads.
type Meta struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// Spec is spec: the endpoint, the middleware hooks and ignoreErrors
// (spec.catalog is informational and not read).
type Spec struct {
	Endpoint     Endpoint    `json:"endpoint"`
	Middleware   *Middleware `json:"middleware,omitempty"`
	IgnoreErrors bool        `json:"ignoreErrors,omitempty"`
}

// Endpoint is spec.endpoint: exactly one transport.
type Endpoint struct {
	StreamableHTTP *HTTPTransport `json:"streamableHTTP,omitempty"`
	SSE            *HTTPTransport `json:"sse,omitempty"`
	Stdio          *Stdio         `json:"stdio,omitempty"`
}

// HTTPTransport is spec.endpoint.streamableHTTP or spec.endpoint.sse.
type HTTPTransport struct {
	URL             string      `json:"url"`
	ProtocolVersion string      `json:"protocolVersion,omitempty"`
	Timeout         *Duration   `json:"timeout,omitempty"`
	Headers         []NameValue `json:"headers,omitempty"`
	Auth            *Auth       `json:"auth,omitempty"`
}

// Stdio is spec.endpoint.stdio: a subprocess spoken to on its stdin and
// stdout.
type Stdio struct {
	Command string      `json:"command"`
	Args    []string    `json:"args,omitempty"`
	Env     []NameValue `json:"env,omitempty"`
}

// NameValue is a header or environment variable: a plain value, a
// secretKeyRef (read from auth.secretStore) or an envRef.
type NameValue struct {
	Name         string        `json:"name"`
	Value        *Value        `json:"value,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
	EnvRef       string        `json:"envRef,omitempty"`
}

// Value is a value as Dapr's DynamicValue reads it: a string as is, any
// other JSON value as its JSON text.
type Value struct{ Text string }

// UnmarshalJSON implements json.Unmarshaler.
func (v *Value) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v.Text = s
		return nil
	}
	v.Text = string(b)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return json.Marshal(v.Text) }

// SecretKeyRef names one key of one secret.
type SecretKeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

// Auth is the auth of an HTTP transport.
type Auth struct {
	// SecretStore resolves the secretKeyRef entries of the headers and
	// of oauth2 ("kubernetes" when unset, as in Dapr).
	SecretStore string  `json:"secretStore,omitempty"`
	OAuth2      *OAuth2 `json:"oauth2,omitempty"`
	SPIFFE      *SPIFFE `json:"spiffe,omitempty"`
}

// OAuth2 is the client credentials flow against Issuer (the token URL).
type OAuth2 struct {
	Issuer       string        `json:"issuer"`
	Audience     string        `json:"audience,omitempty"`
	Scopes       []string      `json:"scopes,omitempty"`
	ClientID     string        `json:"clientID,omitempty"`
	SecretKeyRef *SecretKeyRef `json:"secretKeyRef,omitempty"`
}

// SPIFFE is auth.spiffe: a JWT SVID sent in a header.
type SPIFFE struct {
	JWT *SPIFFEJWT `json:"jwt,omitempty"`
}

// SPIFFEJWT says where the JWT SVID goes and for which audience.
type SPIFFEJWT struct {
	Header            string `json:"header"`
	HeaderValuePrefix string `json:"headerValuePrefix,omitempty"`
	Audience          string `json:"audience"`
}

// Middleware is spec.middleware: workflows run around each call, in order.
type Middleware struct {
	BeforeCallTool  []Hook `json:"beforeCallTool,omitempty"`
	AfterCallTool   []Hook `json:"afterCallTool,omitempty"`
	BeforeListTools []Hook `json:"beforeListTools,omitempty"`
	AfterListTools  []Hook `json:"afterListTools,omitempty"`
}

// Hook is one middleware workflow. With Mutate, its output replaces what
// flows on (the arguments before a call, the result after).
type Hook struct {
	Workflow HookWorkflow `json:"workflow"`
	Mutate   bool         `json:"mutate,omitempty"`
}

// HookWorkflow names the hook's workflow, run as a child workflow; AppID
// runs it on another app.
type HookWorkflow struct {
	WorkflowName string `json:"workflowName"`
	AppID        string `json:"appID,omitempty"`
}

// Duration is a Go duration string ("5s") in JSON.
type Duration struct{ time.Duration }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Name is metadata.name.
func (s *Server) Name() string { return s.Metadata.Name }

// LogName is the name with the URL, as daprd logs it.
func (s *Server) LogName() string {
	if t := s.http(); t != nil {
		return s.Metadata.Name + " (" + t.URL + ")"
	}
	return s.Metadata.Name
}

// http is the HTTP transport (streamableHTTP or sse), nil for stdio.
func (s *Server) http() *HTTPTransport {
	if s.Spec.Endpoint.StreamableHTTP != nil {
		return s.Spec.Endpoint.StreamableHTTP
	}
	return s.Spec.Endpoint.SSE
}

// DefaultTimeout is the deadline of one call to the server when its
// transport sets none (Dapr's).
const DefaultTimeout = 30 * time.Second

// Timeout is the deadline of one call to the server.
func (s *Server) Timeout() time.Duration {
	if t := s.http(); t != nil && t.Timeout != nil && t.Timeout.Duration > 0 {
		return t.Timeout.Duration
	}
	return DefaultTimeout
}

// Parse reads one MCPServer document (YAML or JSON). Fields the sidecar
// does not read (spec.catalog, labels) are ignored.
func Parse(raw []byte) (*Server, error) {
	var s Server
	if err := yaml.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("invalid MCPServer: %w", err)
	}
	return &s, nil
}

// Validate checks what Dapr's CRD schema checks: a name, exactly one
// transport with its required fields, hooks that name a workflow.
func (s *Server) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Metadata.Name == "" {
		add("metadata.name: missing")
	}
	if s.APIVersion != "" && s.APIVersion != APIVersion {
		add("apiVersion: %q is not supported; use %s", s.APIVersion, APIVersion)
	}
	ep := s.Spec.Endpoint
	n := 0
	for _, set := range []bool{ep.StreamableHTTP != nil, ep.SSE != nil, ep.Stdio != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		add("spec.endpoint: exactly one of streamableHTTP, sse, or stdio must be set")
	}
	checkHTTP := func(field string, t *HTTPTransport) {
		if t == nil {
			return
		}
		if t.URL == "" {
			add("%s.url: missing", field)
		}
		for i, h := range t.Headers {
			if h.Name == "" {
				add("%s.headers[%d].name: missing", field, i)
			}
		}
		a := t.Auth
		if a == nil {
			return
		}
		if o := a.OAuth2; o != nil {
			if o.Issuer == "" {
				add("%s.auth.oauth2.issuer: missing", field)
			}
			if o.SecretKeyRef == nil || o.SecretKeyRef.Name == "" {
				add("%s.auth.oauth2.secretKeyRef is required for OAuth2 client credentials", field)
			}
		}
		if sp := a.SPIFFE; sp != nil && sp.JWT != nil && (sp.JWT.Header == "" || sp.JWT.Audience == "") {
			add("%s.auth.spiffe.jwt: header and audience are required", field)
		}
	}
	checkHTTP("spec.endpoint.streamableHTTP", ep.StreamableHTTP)
	checkHTTP("spec.endpoint.sse", ep.SSE)
	if t := ep.Stdio; t != nil {
		if t.Command == "" {
			add("spec.endpoint.stdio.command: missing")
		}
		for i, v := range t.Env {
			if v.Name == "" {
				add("spec.endpoint.stdio.env[%d].name: missing", i)
			}
		}
	}
	if m := s.Spec.Middleware; m != nil {
		for _, hs := range []struct {
			field string
			hooks []Hook
		}{{"beforeCallTool", m.BeforeCallTool}, {"afterCallTool", m.AfterCallTool}, {"beforeListTools", m.BeforeListTools}, {"afterListTools", m.AfterListTools}} {
			for i, h := range hs.hooks {
				if h.Workflow.WorkflowName == "" {
					add("spec.middleware.%s[%d].workflow.workflowName: missing", hs.field, i)
				}
			}
		}
		for i, h := range m.BeforeListTools {
			if h.Mutate {
				add("spec.middleware.beforeListTools[%d].mutate: beforeListTools hooks cannot mutate", i)
			}
		}
	}
	return errors.Join(errs...)
}

// CheckSecurity checks what Dapr's security rules check beyond the
// schema: http(s) URLs with a host; a stdio command that does not escape
// the working folder, variable names without '=', and no stdio at all in
// Kubernetes mode.
func (s *Server) CheckSecurity(kubernetes bool) error {
	ep := s.Spec.Endpoint
	checkURL := func(transport, raw string) error {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			return fmt.Errorf("%s.url is not a valid URL: %w", transport, err)
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Errorf("%s.url scheme must be http or https, got %q", transport, u.Scheme)
		case u.Host == "":
			return fmt.Errorf("%s.url must have a host", transport)
		}
		return nil
	}
	switch {
	case ep.Stdio != nil:
		if kubernetes {
			return errors.New("stdio transport is not allowed in Kubernetes mode")
		}
		if err := checkCommand(ep.Stdio.Command); err != nil {
			return fmt.Errorf("stdio.command %w", err)
		}
		for _, v := range ep.Stdio.Env {
			if strings.ContainsAny(v.Name, "=\n\x00") {
				return fmt.Errorf("stdio.env name %q contains invalid characters", v.Name)
			}
		}
	case ep.StreamableHTTP != nil:
		return checkURL("streamableHTTP", ep.StreamableHTTP.URL)
	case ep.SSE != nil:
		return checkURL("sse", ep.SSE.URL)
	}
	return nil
}

// checkCommand rejects a relative command path that leads out of the
// working folder; bare names are looked up in PATH when run, absolute
// paths are the writer's choice (Dapr's rule).
func checkCommand(command string) error {
	if !strings.ContainsRune(command, filepath.Separator) || filepath.IsAbs(command) {
		return nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("cannot determine the working directory: %w", err)
	}
	abs, err := filepath.Abs(command)
	if err != nil {
		return err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		resolved = abs
	}
	rel, err := filepath.Rel(wd, resolved)
	if err != nil || strings.HasPrefix(rel, "..") {
		return errors.New("must not escape working directory")
	}
	return nil
}
