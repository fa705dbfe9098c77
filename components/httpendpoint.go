package components

import (
	"context"
	"fmt"
	"slices"
)

// TLS renegotiation settings of an HTTPEndpoint's spec.clientTLS
// (Dapr's values; empty means Never).
const (
	RenegotiateNever          = "Never"
	RenegotiateOnceAsClient   = "OnceAsClient"
	RenegotiateFreelyAsClient = "FreelyAsClient"
)

// HTTPEndpoint is one HTTPEndpoint resource: a service outside Dapr that
// apps invoke by name (/v1.0/invoke/<name>/method/<path>) as if it were an
// app. It is a plain value: the resource folders (Load) and a Kubernetes
// operator source both produce it. Header values and TLS documents are not
// resolved yet; see Env.ResolveHTTPEndpoint.
type HTTPEndpoint struct {
	APIVersion string
	Name       string
	Namespace  string
	// SecretStore is auth.secretStore, which resolves secretKeyRef entries.
	SecretStore string
	// BaseURL is spec.baseUrl: an absolute http or https URL. The invoked
	// method is appended to it.
	BaseURL string
	// Headers are spec.headers, set on every request (replacing the
	// caller's header of the same name).
	Headers []MetadataItem
	// ClientTLS is spec.clientTLS; nil when absent.
	ClientTLS *ClientTLS
	// Scopes lists the app IDs that may use the endpoint; empty: all.
	Scopes []string

	Source string
	Line   int
}

// ClientTLS is how the sidecar connects to an https endpoint: the CA that
// signs the server's certificate (the system roots when unset) and the
// client certificate to present.
type ClientTLS struct {
	RootCA      *TLSDocument
	Certificate *TLSDocument
	PrivateKey  *TLSDocument
	// Renegotiation is one of the Renegotiate* values ("" = Never).
	Renegotiation string
}

// TLSDocument is one PEM document, written inline (Value) or read from a
// secret store (SecretKeyRef).
type TLSDocument struct {
	Value        string
	SecretKeyRef *SecretKeyRef
}

// InScope reports whether appID may use the endpoint.
func (e HTTPEndpoint) InScope(appID string) bool {
	return inScope(e.Scopes, appID)
}

// Same reports whether two endpoints are the same resource with the same
// settings, wherever they were read from.
func (e HTTPEndpoint) Same(o HTTPEndpoint) bool {
	return e.APIVersion == o.APIVersion && e.Name == o.Name && e.Namespace == o.Namespace &&
		e.SecretStore == o.SecretStore && e.BaseURL == o.BaseURL &&
		slices.Equal(e.Scopes, o.Scopes) && slices.EqualFunc(e.Headers, o.Headers, MetadataItem.same) &&
		e.ClientTLS.same(o.ClientTLS)
}

func (t *ClientTLS) same(o *ClientTLS) bool {
	if t == nil || o == nil {
		return t == o
	}
	return t.Renegotiation == o.Renegotiation &&
		t.RootCA.same(o.RootCA) && t.Certificate.same(o.Certificate) && t.PrivateKey.same(o.PrivateKey)
}

func (d *TLSDocument) same(o *TLSDocument) bool {
	if d == nil || o == nil {
		return d == o
	}
	if (d.SecretKeyRef == nil) != (o.SecretKeyRef == nil) {
		return false
	}
	return d.Value == o.Value && (d.SecretKeyRef == nil || *d.SecretKeyRef == *o.SecretKeyRef)
}

// ResolvedHTTPEndpoint is an HTTPEndpoint with its header values and TLS
// documents read (environment, secret stores): what a client needs.
type ResolvedHTTPEndpoint struct {
	Name    string
	BaseURL string
	// Headers in file order; a later header of the same name wins.
	Headers []Header
	// RootCA, Certificate and PrivateKey are PEM text, empty when unset.
	RootCA, Certificate, PrivateKey string
	Renegotiation                   string
}

// Header is one resolved header.
type Header struct{ Name, Value string }

// ResolveHTTPEndpoint reads the header values (value, envRef with Dapr's
// deny list, or secretKeyRef through auth.secretStore) and the TLS
// documents of e. Errors name the file, endpoint and field, never a
// secret; a configuration error is Permanent, a secret store that is not
// ready yet is not. Templates ({uuid}, {appID}) are not filled in: Dapr
// does not for HTTP endpoints.
func (env Env) ResolveHTTPEndpoint(ctx context.Context, e HTTPEndpoint) (ResolvedHTTPEndpoint, error) {
	out := ResolvedHTTPEndpoint{Name: e.Name, BaseURL: e.BaseURL}
	fail := func(field string, err error) error {
		return &ResourceError{File: e.Source, Line: e.Line, Kind: KindHTTPEndpoint, Name: e.Name, Field: field, Err: err}
	}
	for i, it := range e.Headers {
		v, sub, err := env.value(ctx, e.SecretStore, it)
		if err != nil {
			return ResolvedHTTPEndpoint{}, fail(fmt.Sprintf("spec.headers[%d] (%s)%s", i, it.Name, sub), err)
		}
		out.Headers = append(out.Headers, Header{Name: it.Name, Value: v})
	}
	t := e.ClientTLS
	if t == nil {
		return out, nil
	}
	out.Renegotiation = t.Renegotiation
	for _, d := range []struct {
		field string
		doc   *TLSDocument
		dst   *string
	}{
		{"spec.clientTLS.rootCA", t.RootCA, &out.RootCA},
		{"spec.clientTLS.certificate", t.Certificate, &out.Certificate},
		{"spec.clientTLS.privateKey", t.PrivateKey, &out.PrivateKey},
	} {
		switch {
		case d.doc == nil:
		case d.doc.SecretKeyRef != nil:
			v, err := env.secret(ctx, e.SecretStore, *d.doc.SecretKeyRef, d.doc.Value, d.doc.Value != "")
			if err != nil {
				return ResolvedHTTPEndpoint{}, fail(d.field+".secretKeyRef", err)
			}
			*d.dst = v
		default:
			*d.dst = d.doc.Value
		}
	}
	return out, nil
}
