package components

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testCertPEM returns a self-signed certificate and its key, as PEM.
func testCertPEM(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
}

// yamlQuoted writes PEM as daprd's own tests do: one double-quoted line.
func yamlQuoted(s string) string { return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"` }

const endpointYAML = `apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: payments
  namespace: shop
auth:
  secretStore: vault
spec:
  version: v1alpha1
  baseURL: https://api.example.com/v2
  headers:
  - name: X-Api-Key
    secretKeyRef: {name: payments-secret, key: apikey}
  - name: X-Region
    value: eu
  - name: X-From-Env
    envRef: REGION
  clientTLS:
    renegotiation: OnceAsClient
    rootCA:
      secretKeyRef: {name: payments-ca}
scopes: [checkout]
`

func TestParseHTTPEndpoint(t *testing.T) {
	set := Parse([]byte(endpointYAML), "ep.yaml", "checkout")
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if len(set.HTTPEndpoints) != 1 || len(set.Documents) != 0 {
		t.Fatalf("got %d endpoints and %d documents, want 1 and 0", len(set.HTTPEndpoints), len(set.Documents))
	}
	want := HTTPEndpoint{
		APIVersion: APIVersionV1Alpha1, Name: "payments", Namespace: "shop", SecretStore: "vault",
		BaseURL: "https://api.example.com/v2",
		Headers: []MetadataItem{
			{Name: "X-Api-Key", SecretKeyRef: &SecretKeyRef{Name: "payments-secret", Key: "apikey"}},
			{Name: "X-Region", Value: "eu", HasValue: true},
			{Name: "X-From-Env", EnvRef: "REGION"},
		},
		ClientTLS: &ClientTLS{Renegotiation: RenegotiateOnceAsClient, RootCA: &TLSDocument{SecretKeyRef: &SecretKeyRef{Name: "payments-ca"}}},
		Scopes:    []string{"checkout"},
		Source:    "ep.yaml", Line: 1,
	}
	if got := set.HTTPEndpoints[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if !want.Same(set.HTTPEndpoints[0]) {
		t.Error("Same is false for equal endpoints")
	}
	if other := Parse([]byte(endpointYAML), "ep.yaml", "someone-else"); len(other.HTTPEndpoints) != 0 || other.Err() != nil {
		t.Errorf("scoped-away endpoint: %d loaded, err %v", len(other.HTTPEndpoints), other.Err())
	}
}

func TestParseHTTPEndpointInlineTLS(t *testing.T) {
	cert, key := testCertPEM(t)
	doc := `apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata: {name: tls}
spec:
  baseUrl: https://localhost:8443
  clientTLS:
    rootCA: {value: ` + yamlQuoted(cert) + `}
    certificate: {value: ` + yamlQuoted(cert) + `}
    privateKey: {value: ` + yamlQuoted(key) + `}
`
	set := Parse([]byte(doc), "tls.yaml", "app")
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	tl := set.HTTPEndpoints[0].ClientTLS
	if tl.RootCA.Value != cert || tl.Certificate.Value != cert || tl.PrivateKey.Value != key {
		t.Errorf("TLS documents not read as written: %+v", tl)
	}
}

func TestParseHTTPEndpointErrors(t *testing.T) {
	head := "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"no name", head + "metadata: {}\nspec: {baseUrl: http://x}\n", "metadata.name: missing"},
		{"dotted name", head + "metadata: {name: a.b}\nspec: {baseUrl: http://x}\n", "cannot contain '.'"},
		{"no base URL", head + "metadata: {name: a}\nspec: {}\n", "spec.baseUrl: missing"},
		{"relative base URL", head + "metadata: {name: a}\nspec: {baseUrl: /api}\n", "must start with http:// or https://"},
		{"other scheme", head + "metadata: {name: a}\nspec: {baseUrl: ftp://x}\n", "must start with http:// or https://"},
		{"no host", head + "metadata: {name: a}\nspec: {baseUrl: 'http://'}\n", "has no host"},
		{"query", head + "metadata: {name: a}\nspec: {baseUrl: 'http://x/?a=1'}\n", "cannot carry a query"},
		{"bad version", "apiVersion: dapr.io/v2alpha1\nkind: HTTPEndpoint\nmetadata: {name: a}\nspec: {baseUrl: http://x}\n", "is not supported for an HTTPEndpoint"},
		{"header without name", head + "metadata: {name: a}\nspec: {baseUrl: http://x, headers: [{value: v}]}\n", "spec.headers[0].name: missing"},
		{"bad header name", head + "metadata: {name: a}\nspec: {baseUrl: http://x, headers: [{name: 'a b', value: v}]}\n", "not a valid HTTP header name"},
		{"secret without name", head + "metadata: {name: a}\nspec: {baseUrl: http://x, headers: [{name: h, secretKeyRef: {key: k}}]}\n", "secretKeyRef.name: missing"},
		{"renegotiation", head + "metadata: {name: a}\nspec: {baseUrl: http://x, clientTLS: {renegotiation: Always}}\n", `"Always" is not one of`},
		{"certificate without key", head + "metadata: {name: a}\nspec: {baseUrl: http://x, clientTLS: {certificate: {secretKeyRef: {name: c}}}}\n", "go together"},
		{"root CA not PEM", head + "metadata: {name: a}\nspec: {baseUrl: http://x, clientTLS: {rootCA: {value: nope}}}\n", "rootCA.value: no PEM certificate"},
		{"key not PEM", head + "metadata: {name: a}\nspec: {baseUrl: http://x, clientTLS: {certificate: {value: x}, privateKey: {value: y}}}\n", "certificate.value: is not PEM"},
		{"wrong type", head + "metadata: {name: a}\nspec: {baseUrl: [x]}\n", "fix the field's type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := Parse([]byte(tc.doc), "e.yaml", "app")
			if len(set.HTTPEndpoints) != 0 {
				t.Errorf("invalid endpoint loaded: %+v", set.HTTPEndpoints)
			}
			err := set.Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "e.yaml") {
				t.Errorf("error %v; want it to name e.yaml and contain %q", err, tc.want)
			}
		})
	}
}

// TestParseHTTPEndpointValueAndSecret: a TLS document with both a value
// and a secretKeyRef (what Dapr's operator sends) loads; the secret wins.
func TestParseHTTPEndpointValueAndSecret(t *testing.T) {
	doc := "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: a}\nauth: {secretStore: vault}\n" +
		"spec: {baseUrl: https://x, clientTLS: {rootCA: {value: not-pem, secretKeyRef: {name: ca}}}}\n"
	set := Parse([]byte(doc), "e.yaml", "app")
	if err := set.Err(); err != nil || len(set.HTTPEndpoints) != 1 {
		t.Fatalf("err %v, endpoints %+v; want it loaded", err, set.HTTPEndpoints)
	}
	env := Env{Secret: func(_ context.Context, store, name, key string) (string, error) {
		return store + "/" + name + "/" + key, nil
	}}
	got, err := env.ResolveHTTPEndpoint(context.Background(), set.HTTPEndpoints[0])
	if err != nil || got.RootCA != "vault/ca/ca" {
		t.Errorf("rootCA %q, %v; want the secret", got.RootCA, err)
	}
}

func TestLoadHTTPEndpointDuplicate(t *testing.T) {
	ep := "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: ext}\nspec: {baseUrl: http://a}\n"
	dir := writeDir(t, map[string]string{"a.yaml": ep, "b.yaml": strings.Replace(ep, "http://a", "http://b", 1)})
	set, err := Load([]string{dir}, "app")
	if err == nil || !strings.Contains(err.Error(), "HTTP endpoint names must be unique") {
		t.Errorf("err = %v, want the duplicate reported", err)
	}
	if len(set.HTTPEndpoints) != 1 || set.HTTPEndpoints[0].BaseURL != "http://a" {
		t.Errorf("endpoints %+v, want the first one only", set.HTTPEndpoints)
	}
}

func TestResolveHTTPEndpoint(t *testing.T) {
	set := Parse([]byte(endpointYAML), "ep.yaml", "checkout")
	ep := set.HTTPEndpoints[0]
	secrets := map[string]string{"vault/payments-secret/apikey": "k-123", "vault/payments-ca/payments-ca": "CA PEM"}
	env := Env{
		Getenv: func(k string) string { return map[string]string{"REGION": "us"}[k] },
		Secret: func(_ context.Context, store, name, key string) (string, error) {
			v, ok := secrets[store+"/"+name+"/"+key]
			if !ok {
				return "", errors.New("not found")
			}
			return v, nil
		},
	}
	got, err := env.ResolveHTTPEndpoint(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	want := ResolvedHTTPEndpoint{Name: "payments", BaseURL: "https://api.example.com/v2",
		Headers:       []Header{{"X-Api-Key", "k-123"}, {"X-Region", "eu"}, {"X-From-Env", "us"}},
		RootCA:        "CA PEM",
		Renegotiation: RenegotiateOnceAsClient}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	delete(secrets, "vault/payments-secret/apikey")
	_, err = env.ResolveHTTPEndpoint(context.Background(), ep)
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), `spec.headers[0] (X-Api-Key).secretKeyRef: secret "payments-secret" key "apikey" from secret store "vault"`) {
		t.Errorf("missing secret: err = %v (permanent %v)", err, IsPermanent(err))
	}
	ep.SecretStore = ""
	_, err = env.ResolveHTTPEndpoint(context.Background(), ep)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "no secret store") {
		t.Errorf("no secret store: err = %v, want a permanent error", err)
	}
	ep.Headers = []MetadataItem{{Name: "X", EnvRef: "DAPR_API_TOKEN"}}
	_, err = env.ResolveHTTPEndpoint(context.Background(), ep)
	if !IsPermanent(err) || !strings.Contains(err.Error(), "may not be read") {
		t.Errorf("reserved variable: err = %v, want a permanent error", err)
	}
}

func TestHTTPEndpointDiff(t *testing.T) {
	a := &Set{HTTPEndpoints: []HTTPEndpoint{{Name: "x", BaseURL: "http://a"}, {Name: "y", BaseURL: "http://y"}}}
	b := &Set{HTTPEndpoints: []HTTPEndpoint{{Name: "x", BaseURL: "http://b"}, {Name: "z", BaseURL: "http://z"}}}
	var got []string
	for _, e := range Diff(a, b) {
		got = append(got, e.Op.String()+" "+e.Kind+"/"+e.Name)
	}
	want := []string{"changed HTTPEndpoint/x", "added HTTPEndpoint/z", "removed HTTPEndpoint/y"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %v, want %v", got, want)
	}
}

// FuzzHTTPEndpointSpec fuzzes the spec of an HTTPEndpoint (the part its
// parser reads): no input panics the parser or the resolver, and an
// accepted endpoint has a name and a usable base URL.
func FuzzHTTPEndpointSpec(f *testing.F) {
	cert, key := testCertPEM(f)
	for _, spec := range []string{
		"{baseUrl: http://localhost:3000}",
		"baseURL: https://api.example.com/v2\nheaders:\n- {name: A, value: b}\n- {name: C, envRef: D}\n- {name: E, secretKeyRef: {name: s, key: k}}\n",
		"{baseUrl: 'https://h', clientTLS: {renegotiation: FreelyAsClient, rootCA: {value: " + yamlQuoted(cert) + "}, certificate: {value: " + yamlQuoted(cert) + "}, privateKey: {value: " + yamlQuoted(key) + "}}}",
		"{baseUrl: 'https://h', clientTLS: {rootCA: {secretKeyRef: {name: ca}}, certificate: {secretKeyRef: {name: c, key: crt}}, privateKey: {secretKeyRef: {name: c, key: key}}}}",
		"{baseUrl: 'http://[::1]:80/%zz', headers: [{name: '', value: x}, [1]]}",
		"{baseUrl: {a: b}, clientTLS: [x]}",
		"&a {baseUrl: *a}",
	} {
		f.Add([]byte(spec))
	}
	env := Env{Getenv: func(string) string { return "e" },
		Secret: func(context.Context, string, string, string) (string, error) { return "s", nil }}
	f.Fuzz(func(t *testing.T, spec []byte) {
		var b strings.Builder
		b.WriteString("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\nauth: {secretStore: st}\nspec:\n")
		for _, line := range strings.Split(string(spec), "\n") {
			b.WriteString("  " + line + "\n")
		}
		set := Parse([]byte(b.String()), "fuzz.yaml", "app")
		for _, e := range set.Errors {
			if e.Error() == "" {
				t.Fatal("empty error message")
			}
		}
		for _, e := range set.HTTPEndpoints {
			if e.Name != "e" || CheckBaseURL(e.BaseURL) != nil {
				t.Fatalf("invalid endpoint accepted: %+v", e)
			}
			if _, err := env.ResolveHTTPEndpoint(context.Background(), e); err != nil {
				t.Fatalf("accepted endpoint does not resolve: %v", err)
			}
		}
	})
}

// TestResolveOperatorSecrets: in Kubernetes mode Dapr's operator resolves
// the secretKeyRefs of the Kubernetes secret store and sends the values
// base64-encoded; other stores are still read by the sidecar.
func TestResolveOperatorSecrets(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	ref := &SecretKeyRef{Name: "dapr-tls-certificates", Key: "tls.crt"}
	env := Env{DefaultSecretStore: "kubernetes", Prefilled: "kubernetes", Secret: func(_ context.Context, store, name, key string) (string, error) {
		return store + ":" + name + ":" + key, nil
	}}
	ep := HTTPEndpoint{Name: "foobar", BaseURL: "https://localhost:1",
		Headers: []MetadataItem{{Name: "X-Key", Value: b64("k"), HasValue: true, SecretKeyRef: ref}},
		ClientTLS: &ClientTLS{
			Certificate: &TLSDocument{Value: b64("CERT PEM"), SecretKeyRef: ref},
			PrivateKey:  &TLSDocument{Value: b64("KEY PEM"), SecretKeyRef: &SecretKeyRef{Name: "dapr-tls-certificates", Key: "tls.key"}},
		}}
	for _, store := range []string{"", "kubernetes"} {
		ep.SecretStore = store
		got, err := env.ResolveHTTPEndpoint(context.Background(), ep)
		if err != nil {
			t.Fatalf("store %q: %v", store, err)
		}
		if got.Certificate != "CERT PEM" || got.PrivateKey != "KEY PEM" || got.Headers[0].Value != "k" {
			t.Errorf("store %q: got %+v, want the operator's values decoded", store, got)
		}
	}
	ep.SecretStore = "vault"
	got, err := env.ResolveHTTPEndpoint(context.Background(), ep)
	if err != nil || got.Certificate != "vault:dapr-tls-certificates:tls.crt" {
		t.Errorf("another store: got %+v, %v; want it read from the store", got, err)
	}
	md, err := env.Resolve(context.Background(), Component{Name: "c", Metadata: []MetadataItem{{Name: "password", Value: b64("pw"), HasValue: true, SecretKeyRef: ref}}})
	if err != nil || md.Properties["password"] != "pw" {
		t.Errorf("component: %v, %v; want the operator's value decoded", md.Properties, err)
	}
	ep.SecretStore = ""
	ep.ClientTLS.Certificate.Value = "not base64!"
	if _, err := env.ResolveHTTPEndpoint(context.Background(), ep); !IsPermanent(err) || !strings.Contains(err.Error(), "spec.clientTLS.certificate.secretKeyRef: secret \"dapr-tls-certificates\" key \"tls.crt\" from secret store \"kubernetes\": the operator's value is not base64") {
		t.Errorf("bad value: err = %v, want a permanent error naming the field", err)
	}
}
