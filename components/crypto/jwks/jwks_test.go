package jwks

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const set = `{"keys":[{"kty":"oct","kid":"a","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"},{"kty":"EC","kid":"b","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func TestSources(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(set)) }))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(file, []byte(set), 0o600)

	for name, loc := range map[string]string{
		"inline": set, "base64": base64.StdEncoding.EncodeToString([]byte(set)), "file": file, "url": srv.URL,
	} {
		t.Run(name, func(t *testing.T) {
			s := New(nil)
			if err := s.Init(context.Background(), components.Metadata{Name: "j", Properties: map[string]string{"jwks": loc, "minRefreshInterval": "1s"}}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if k, err := s.Key(context.Background(), "a"); err != nil || !k.Symmetric() {
				t.Fatalf("key a: %v", err)
			}
			if _, err := s.Key(context.Background(), "b"); err != nil {
				t.Fatalf("key b: %v", err)
			}
			if _, err := s.Key(context.Background(), "c"); !errors.Is(err, crypto.ErrKeyNotFound) {
				t.Fatalf("key c: %v", err)
			}
		})
	}
}

func TestFileChange(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(file, []byte(set), 0o600)
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "j", Properties: map[string]string{"jwks": file}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file, []byte(`{"keys":[{"kty":"oct","kid":"new","k":"AAEC"}]}`), 0o600)
	later := time.Now().Add(time.Hour)
	os.Chtimes(file, later, later)
	if _, err := s.Key(context.Background(), "new"); err != nil {
		t.Fatalf("changed file not re-read: %v", err)
	}
}

func TestBadMetadata(t *testing.T) {
	for _, p := range []map[string]string{{}, {"jwks": "not json"}, {"jwks": set, "requestTimeout": "soon"}} {
		if err := New(nil).Init(context.Background(), components.Metadata{Name: "j", Properties: p}); err == nil {
			t.Fatalf("Init(%v) accepted", p)
		}
	}
}
