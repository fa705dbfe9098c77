package components

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

var httpEndpointSpecKeys = keySchema{
	"baseUrl": nil,
	"headers": {"name": nil, "value": nil, "envRef": nil, "secretKeyRef": {"name": nil, "key": nil}},
	"clientTLS": {
		"rootCA":        tlsDocumentKeys,
		"certificate":   tlsDocumentKeys,
		"privateKey":    tlsDocumentKeys,
		"renegotiation": nil,
	},
}

var tlsDocumentKeys = keySchema{"value": nil, "secretKeyRef": {"name": nil, "key": nil}}

type rawHTTPEndpoint struct {
	Auth struct {
		SecretStore string `yaml:"secretStore"`
	} `yaml:"auth"`
	Spec struct {
		BaseURL   string    `yaml:"baseUrl"`
		Headers   []rawItem `yaml:"headers"`
		ClientTLS *struct {
			RootCA        *rawTLSDocument `yaml:"rootCA"`
			Certificate   *rawTLSDocument `yaml:"certificate"`
			PrivateKey    *rawTLSDocument `yaml:"privateKey"`
			Renegotiation string          `yaml:"renegotiation"`
		} `yaml:"clientTLS"`
	} `yaml:"spec"`
}

type rawTLSDocument struct {
	Value        yaml.Node        `yaml:"value"`
	SecretKeyRef *rawSecretKeyRef `yaml:"secretKeyRef"`
}

// parseHTTPEndpoint reads and checks one HTTPEndpoint document. Fields
// Tandem does not use (spec.version, which Dapr's own examples write) are
// ignored, as in Dapr.
func parseHTTPEndpoint(root *yaml.Node, h rawHeader, source string) (HTTPEndpoint, []*ResourceError) {
	var errs []*ResourceError
	add := func(field string, err error) {
		errs = append(errs, &ResourceError{File: source, Line: root.Line, Kind: KindHTTPEndpoint, Name: h.Metadata.Name, Field: field, Err: err})
	}
	canonicalKeys(mapValue(root, "spec"), httpEndpointSpecKeys)
	var r rawHTTPEndpoint
	if err := root.Decode(&r); err != nil {
		add("", typeErr(err))
		return HTTPEndpoint{}, errs
	}
	e := HTTPEndpoint{
		APIVersion:  h.APIVersion,
		Name:        h.Metadata.Name,
		Namespace:   h.Metadata.Namespace,
		SecretStore: strings.TrimSpace(r.Auth.SecretStore),
		BaseURL:     strings.TrimSpace(r.Spec.BaseURL),
		Scopes:      h.Scopes,
		Source:      source,
		Line:        root.Line,
	}
	switch h.APIVersion {
	case APIVersionV1Alpha1:
	case "":
		add("apiVersion", fmt.Errorf("missing; add apiVersion: %s", APIVersionV1Alpha1))
	default:
		add("apiVersion", fmt.Errorf("%q is not supported for an HTTPEndpoint; use %s", h.APIVersion, APIVersionV1Alpha1))
	}
	if err := checkEndpointName(e.Name); err != nil {
		add("metadata.name", err)
	}
	if err := CheckBaseURL(e.BaseURL); err != nil {
		add("spec.baseUrl", err)
	}
	for i, it := range r.Spec.Headers {
		item, field, err := headerItem(i, it)
		if err != nil {
			add(field, err)
			continue
		}
		e.Headers = append(e.Headers, item)
	}
	if t := r.Spec.ClientTLS; t != nil {
		e.ClientTLS = &ClientTLS{Renegotiation: strings.TrimSpace(t.Renegotiation)}
		var err error
		for _, d := range []struct {
			field string
			raw   *rawTLSDocument
			dst   **TLSDocument
		}{
			{"spec.clientTLS.rootCA", t.RootCA, &e.ClientTLS.RootCA},
			{"spec.clientTLS.certificate", t.Certificate, &e.ClientTLS.Certificate},
			{"spec.clientTLS.privateKey", t.PrivateKey, &e.ClientTLS.PrivateKey},
		} {
			if *d.dst, err = tlsDocument(d.raw); err != nil {
				add(d.field, err)
			}
		}
		for _, fe := range e.ClientTLS.check() {
			add(fe.field, fe.err)
		}
	}
	return e, errs
}

// checkEndpointName is checkName with the resource's own words: the name
// is the app ID callers use.
func checkEndpointName(name string) error {
	if name == "" {
		return errors.New("missing; give the endpoint a name (apps invoke it as /v1.0/invoke/<name>/method/...)")
	}
	if strings.Contains(name, ".") {
		// "a.b" would be read as app a in namespace b.
		return fmt.Errorf("%q cannot contain '.': invocation targets read it as app.namespace", name)
	}
	return checkName(name)
}

// CheckBaseURL checks an HTTPEndpoint's base URL: absolute, http or https,
// with a host, and no query or fragment (the method and the caller's query
// are appended to it).
func CheckBaseURL(s string) error {
	if s == "" {
		return errors.New("missing; set it to the service's URL, e.g. https://api.example.com")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must start with http:// or https://", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%q cannot carry a query, a fragment or credentials; put credentials in spec.headers", s)
	}
	return nil
}

func headerItem(i int, it rawItem) (MetadataItem, string, error) {
	field := fmt.Sprintf("spec.headers[%d]", i)
	if strings.TrimSpace(it.Name) == "" {
		return MetadataItem{}, field + ".name", errors.New("missing; every header needs a name")
	}
	field = fmt.Sprintf("spec.headers[%d] (%s)", i, it.Name)
	if !validHeaderName(it.Name) {
		return MetadataItem{}, field + ".name", fmt.Errorf("%q is not a valid HTTP header name", it.Name)
	}
	item := MetadataItem{Name: it.Name, EnvRef: strings.TrimSpace(it.EnvRef)}
	v, has, err := valueText(&it.Value)
	if err != nil {
		return MetadataItem{}, field + ".value", err
	}
	item.Value, item.HasValue = v, has
	if ref := it.SecretKeyRef; ref != nil {
		if ref.Name == "" {
			return MetadataItem{}, field + ".secretKeyRef.name", errors.New("missing; name the secret to read")
		}
		item.SecretKeyRef = &SecretKeyRef{Name: ref.Name, Key: ref.Key}
	}
	return item, "", nil
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

func tlsDocument(raw *rawTLSDocument) (*TLSDocument, error) {
	if raw == nil {
		return nil, nil
	}
	v, has, err := valueText(&raw.Value)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	d := &TLSDocument{Value: v}
	if ref := raw.SecretKeyRef; ref != nil && ref.Name != "" {
		d.SecretKeyRef = &SecretKeyRef{Name: ref.Name, Key: ref.Key}
	}
	if !has && d.SecretKeyRef == nil {
		return nil, nil // an empty document is no document, as in Dapr
	}
	// A value next to a secretKeyRef is allowed: Dapr's operator sends the
	// secret it resolved there, and otherwise the secret wins, as in daprd.
	return d, nil
}

type fieldErr struct {
	field string
	err   error
}

// check validates what can be checked before secrets are read: the
// renegotiation setting, a certificate with its key, and the inline PEM
// documents.
func (t *ClientTLS) check() []fieldErr {
	var out []fieldErr
	switch t.Renegotiation {
	case "", RenegotiateNever, RenegotiateOnceAsClient, RenegotiateFreelyAsClient:
	default:
		out = append(out, fieldErr{"spec.clientTLS.renegotiation", fmt.Errorf("%q is not one of %s, %s, %s",
			t.Renegotiation, RenegotiateNever, RenegotiateOnceAsClient, RenegotiateFreelyAsClient)})
	}
	if (t.Certificate == nil) != (t.PrivateKey == nil) {
		out = append(out, fieldErr{"spec.clientTLS", errors.New("certificate and privateKey go together: set both for a client certificate, or neither")})
	}
	if d := t.RootCA; d != nil && d.SecretKeyRef == nil {
		if _, err := ParseRootCA(d.Value); err != nil {
			out = append(out, fieldErr{"spec.clientTLS.rootCA.value", err})
		}
	}
	for _, d := range []struct {
		field string
		doc   *TLSDocument
	}{{"spec.clientTLS.certificate.value", t.Certificate}, {"spec.clientTLS.privateKey.value", t.PrivateKey}} {
		if d.doc != nil && d.doc.SecretKeyRef == nil {
			if b, _ := pem.Decode([]byte(d.doc.Value)); b == nil {
				out = append(out, fieldErr{d.field, errors.New("is not PEM; paste the -----BEGIN ...----- block (\\n for line breaks in a quoted string)")})
			}
		}
	}
	return out
}

// ParseRootCA reads the PEM certificates of a rootCA document.
func ParseRootCA(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return nil, errors.New("no PEM certificate found; paste the CA's -----BEGIN CERTIFICATE----- block")
	}
	return pool, nil
}
