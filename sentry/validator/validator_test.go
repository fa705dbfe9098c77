package validator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
)

func req(id, ns, td, token string) *sentryv1.SignCertificateRequest {
	return &sentryv1.SignCertificateRequest{Id: id, Namespace: ns, TrustDomain: td, Token: token, CertificateSigningRequest: []byte("csr")}
}

func TestInsecure(t *testing.T) {
	tests := []struct {
		name    string
		req     *sentryv1.SignCertificateRequest
		want    string
		wantErr bool
	}{
		{"default trust domain", req("app1", "default", "", ""), "spiffe://public/ns/default/app1", false},
		{"explicit trust domain", req("app1", "prod", "example.org", ""), "spiffe://example.org/ns/prod/app1", false},
		{"empty app id", req("", "default", "", ""), "", true},
		{"dotted app id", req("a.b", "default", "", ""), "", true},
		{"long app id", req(strings.Repeat("a", 65), "default", "", ""), "", true},
		{"no namespace", req("app1", "", "", ""), "", true},
		{"bad trust domain", req("app1", "default", "Bad Domain", ""), "", true},
		{"no csr", &sentryv1.SignCertificateRequest{Id: "a", Namespace: "default"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := Insecure{}.Validate(context.Background(), tt.req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && id.String() != tt.want {
				t.Fatalf("id = %s, want %s", id, tt.want)
			}
		})
	}
}

func TestJoinToken(t *testing.T) {
	v, err := NewJoinToken([]Token{
		{Secret: "s3cret-any"},
		{Secret: "s3cret-orders", AppIDs: []string{"orders", "billing"}},
		{Secret: "s3cret-star", AppIDs: []string{"*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     *sentryv1.SignCertificateRequest
		want    string
		wantErr error
	}{
		{"right token any app", req("app1", "default", "", "s3cret-any"), "spiffe://public/ns/default/app1", nil},
		{"token file with newline", req("app1", "default", "", "s3cret-any\n"), "spiffe://public/ns/default/app1", nil},
		{"bound token own app", req("billing", "default", "", "s3cret-orders"), "spiffe://public/ns/default/billing", nil},
		{"star token", req("x", "ns2", "td", "s3cret-star"), "spiffe://td/ns/ns2/x", nil},
		{"bound token other app", req("app1", "default", "", "s3cret-orders"), "", errors.New("not allowed")},
		{"wrong token", req("app1", "default", "", "s3cret-an"), "", ErrBadToken},
		{"no token", req("app1", "default", "", ""), "", ErrBadToken},
		{"blank token", req("app1", "default", "", "  \n"), "", ErrBadToken},
		{"bad request", req("", "default", "", "s3cret-any"), "", errors.New("invalid request")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Validate(context.Background(), tt.req)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if id.String() != tt.want {
					t.Fatalf("id = %s, want %s", id, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded with id %s, want error", id)
			}
			if !errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error()) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewJoinTokenRejectsEmpty(t *testing.T) {
	if _, err := NewJoinToken(nil); err == nil {
		t.Error("no tokens accepted")
	}
	if _, err := NewJoinToken([]Token{{Secret: ""}}); err == nil {
		t.Error("empty token accepted")
	}
}

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Token
		wantErr bool
	}{
		{"plain", "abc\n", []Token{{Secret: "abc"}}, false},
		{"comments and blanks", "# c\n\n  abc  \n", []Token{{Secret: "abc"}}, false},
		{"bound", "abc app1,app2\nxyz *", []Token{{Secret: "abc", AppIDs: []string{"app1", "app2"}}, {Secret: "xyz", AppIDs: []string{"*"}}}, false},
		{"too many fields", "abc app1 app2", nil, true},
		{"empty app list", "abc ,", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokens(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d tokens, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].Secret != tt.want[i].Secret || strings.Join(got[i].AppIDs, ",") != strings.Join(tt.want[i].AppIDs, ",") {
					t.Fatalf("token %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLoadJoinTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	if err := os.WriteFile(good, []byte("tok1 app1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJoinTokenFile(good); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{empty, filepath.Join(dir, "missing")} {
		if _, err := LoadJoinTokenFile(p); err == nil {
			t.Errorf("LoadJoinTokenFile(%s) succeeded", p)
		}
	}
}

func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{"abc\n", "# c\n\nabc app1,app2\n", "a b c", "abc ,", "x *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tokens, err := ParseTokens(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, tok := range tokens {
			if tok.Secret == "" || strings.ContainsAny(tok.Secret, " \t\n") {
				t.Fatalf("bad secret %q", tok.Secret)
			}
		}
	})
}
